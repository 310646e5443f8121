"""Every JSON request body is decoded here, so no route can be crashed by nesting, odd numbers or lone surrogates.

Python's decoder already stops at about 1,000 levels (RecursionError), but a few hundred levels
can still exhaust the stack in code that later walks the value (validation, logging, jsonify), and
a lone UTF-16 surrogate (`"\\ud800"`) decodes fine yet fails the first time the text is encoded.
Both are refused here, with one iterative walk after decoding, before any route sees the value.
"""
import json
import math
import re

from gateway.errors import BadRequest

MAX_DEPTH = 64
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def parse(raw, max_depth=MAX_DEPTH):
    """The JSON value of a request body (bytes, UTF-8/16/32 as RFC 8259 allows).

    The body's size is bounded before this, by the app's MAX_CONTENT_LENGTH (413).

    :raise BadRequest: code `invalid_json`: not JSON, NaN/Infinity or a number too large for a
        float, nested deeper than `max_depth`, or a string (key or value) with a lone surrogate.
    """
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise _too_deep(max_depth) from None
    except ValueError:              # JSONDecodeError, UnicodeDecodeError, an integer of over 4,300 digits
        raise BadRequest("The request body is not valid JSON.", code="invalid_json") from None
    _check(value, max_depth)
    return value


def _check(value, max_depth):
    """Walk the value with an explicit stack (never recursion): depth and surrogates."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, (dict, list)):
            if depth > max_depth:
                raise _too_deep(max_depth)
            if isinstance(item, dict):
                for key in item:
                    _check_text(key)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)


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
