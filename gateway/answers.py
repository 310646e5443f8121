"""Checks of what an upstream answered, after its family translated it: a malformed answer is a
failed attempt (TRANSIENT: retried, then 502, never charged), never a 500 further up.

Everything past this point (shapes, billing, the relay) may then trust the OpenAI shape: choices
are objects, texts are strings, and token counts are whole, finite and in range.
"""
import math

from gateway import errors

MAX_TOKENS_REPORTED = 10**12      # more than any answer could use; larger is a broken counter
TRANSLATION_ERRORS = (KeyError, TypeError, AttributeError, ValueError, IndexError)
_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")
_DETAILS = {"prompt_tokens_details": ("cached_tokens", "cache_write_tokens"),     # what billing reads
            "completion_tokens_details": ("reasoning_tokens",)}


def completion(translate):
    """`translate()` → a checked chat.completion dict; the translator's own stumbles count as malformed."""
    try:
        body = _answered(translate)
        choices = body.get("choices")
        _require(isinstance(choices, list) and all(_choice(c, "message") for c in choices), "choices")
        body["usage"] = usage(body.get("usage"))
    except TRANSLATION_ERRORS:
        raise _malformed("answer") from None
    return body


def chunks(translated):
    """Checked chat.completion.chunk dicts from a family's translator, as they arrive."""
    try:
        for chunk in translated:
            choices = chunk.get("choices")
            _require(choices is None or isinstance(choices, list) and all(_choice(c, "delta") for c in choices),
                     "choices")
            if chunk.get("usage") is not None:
                chunk["usage"] = usage(chunk["usage"])
            yield chunk
    except TRANSLATION_ERRORS:
        raise _malformed("stream event") from None


def embeddings(translate):
    """`translate()` → a checked embeddings answer: a list of vectors and sound usage."""
    try:
        body = _answered(translate)
        data = body.get("data")
        _require(isinstance(data, list) and all(isinstance(item, dict) and isinstance(item.get("embedding"), (list, str))
                                                for item in data), "data")
        body["usage"] = usage(body.get("usage"))
    except TRANSLATION_ERRORS:
        raise _malformed("embeddings answer") from None
    return body


def usage(value):
    """Usage with whole, finite, non-negative counts (an integral float such as 12.0 is taken as 12)."""
    if value is None:
        return {}
    _require(isinstance(value, dict), "usage")
    clean = _counts(value, _COUNTS, "usage")
    for name, counts in _DETAILS.items():
        if value.get(name) is not None:
            _require(isinstance(value[name], dict), f"usage.{name}")
            clean[name] = _counts(value[name], counts, f"usage.{name}")
    return clean


def _counts(value, names, where):
    clean = dict(value)
    for name in names:
        count = value.get(name)
        if count is None:
            continue
        _require(not isinstance(count, bool) and isinstance(count, (int, float)), f"{where}.{name}")
        _require(math.isfinite(count) and count == int(count) and 0 <= count <= MAX_TOKENS_REPORTED, f"{where}.{name}")
        clean[name] = int(count)
    return clean


def _choice(choice, part):
    _require(isinstance(choice, dict), "choices")
    body = choice.get(part)
    if body is None:
        return True
    _require(isinstance(body, dict), f"choices[].{part}")
    _require(body.get("content") is None or isinstance(body["content"], (str, list)), f"{part}.content")
    calls = body.get("tool_calls")
    _require(calls is None or isinstance(calls, list) and all(
        isinstance(call, dict) and isinstance(call.get("function") or {}, dict) for call in calls), f"{part}.tool_calls")
    return True


def _require(condition, what):
    if not condition:
        raise ValueError(what)


def _answered(translate):
    """The translator's result; its own refusals say the upstream answered (HTTP 200), just badly."""
    try:
        return translate()
    except errors.UpstreamError as exc:
        exc.status = exc.status or 200
        raise


def _malformed(what):
    return errors.UpstreamError(errors.TRANSIENT, f"upstream sent a malformed {what}", 200)
