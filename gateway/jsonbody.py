"""Every JSON request body is decoded here, so no route can be crashed by nesting, odd numbers or lone surrogates.

Python's decoder already stops at about 1,000 levels (RecursionError), but a few hundred levels
can still exhaust the stack in code that later walks the value (validation, logging, jsonify), and
a lone UTF-16 surrogate (`"\\ud800"`) decodes fine yet fails the first time the text is encoded.
Both are refused here, with one iterative walk after decoding, before any route sees the value.

orjson decodes first (in C, a tenth of the standard library's time); the standard library decodes
again whatever orjson refuses, for the exact error (or for what only it takes: UTF-16 and UTF-32,
a byte order mark), and whatever orjson may have rounded: it reads an integer past 64 bits as a
float, so a float that large sends the body to the standard library, which keeps it exact.
"""
import json
import math
import re

import orjson

from gateway.errors import BadRequest

MAX_DEPTH = 64
_PAST_64_BITS = 2.0 ** 63
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def parse(raw, max_depth=MAX_DEPTH):
    """The JSON value of a request body (bytes, UTF-8/16/32 as RFC 8259 allows).

    The body's size is bounded before this, by the app's MAX_CONTENT_LENGTH (413).

    :raise BadRequest: code `invalid_json`: not JSON, NaN/Infinity or a number too large for a
        float, nested deeper than `max_depth`, or a string (key or value) with a lone surrogate.
    """
    try:
        value = orjson.loads(raw)         # it refuses lone surrogates itself
    except orjson.JSONDecodeError:
        return _parse_exactly(raw, max_depth)
    if _walk(value, max_depth, texts=False):
        return _parse_exactly(raw, max_depth)
    return value


def _parse_exactly(raw, max_depth):
    """The standard library's decoding, every number exact."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise _too_deep(max_depth) from None
    except ValueError:              # JSONDecodeError, UnicodeDecodeError, an integer of over 4,300 digits
        raise BadRequest("The request body is not valid JSON.", code="invalid_json") from None
    _walk(value, max_depth, texts=True)
    return value


def _walk(value, max_depth, texts):
    """Walk the value level by level (never recursion): its depth and, with `texts`, its strings'
    surrogates. Returns whether it holds a float of 2**63 or more, which orjson may have made of an integer."""
    level, depth, rounded = [value], 1, False
    while level:
        below = []
        for item in level:
            kind = type(item)
            if kind is dict or kind is list:
                if depth > max_depth:
                    raise _too_deep(max_depth)
                if kind is list:
                    below += item
                    continue
                if texts:
                    for key in item:
                        _check_text(key)
                below += item.values()
            elif kind is str:
                if texts:
                    _check_text(item)
            elif kind is float and abs(item) >= _PAST_64_BITS:
                rounded = True
        level, depth = below, depth + 1
    return rounded


def _check_text(text):
    if _LONE_SURROGATE.search(text):
        raise BadRequest("The request body contains a lone UTF-16 surrogate (\\ud800-\\udfff) in a string; "
                         "send valid Unicode text.", code="invalid_json")


def _too_deep(max_depth):
    return BadRequest(f"The request body is nested deeper than {max_depth} levels.", code="invalid_json")


def _refuse_constant(name):
    raise BadRequest(f"'{name}' is not valid JSON: numbers must be finite.", code="invalid_json")


def _finite_float(text):
    number = float(text)
    if not math.isfinite(number):
        raise BadRequest(f"The number {text[:40]} is too large.", code="invalid_json")
    return number
