"""JSON on the hot path, through orjson: the body sent upstream, its answer, each relayed chunk, our answer.

Every request encodes and decodes JSON four times or more; with the standard library that was
about 5 % of a request's CPU, and orjson (C, well kept, wheels for every platform we run on) does
the same work in a fraction of it. Its output is compact UTF-8, which every JSON reader takes.

Where it differs from the standard library: it refuses an integer past 64 bits, a dict key that
is not a string and a string with a lone surrogate (`dumps` then falls back to the standard
library, ASCII-escaped, so nothing fails that did not fail before), writes NaN and the infinities
as null (they cannot reach it: request bodies are refused with them, `gateway.jsonbody`), and
`loads` refuses them too, as JSON does (a ValueError).
Request bodies from clients are still parsed by `gateway.jsonbody`, for its own checks.
"""
import json

import orjson

loads = orjson.loads


def text(value):
    """`value` as compact JSON text: SQLAlchemy's `json_serializer` for the log's JSON columns."""
    return dumps(value).decode()


def dumps(value):
    """`value` as compact JSON (bytes, UTF-8)."""
    try:
        return orjson.dumps(value)
    except TypeError:       # an integer past 64 bits, a non-string key, a lone surrogate, a type it does not know
        return json.dumps(value, separators=(",", ":")).encode()
