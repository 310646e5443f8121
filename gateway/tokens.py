"""Token estimates for reservations and for streams that end before the upstream reports usage.

They err high on purpose: a reservation that undercounts lets a request spend credit it does
not have. So every part of the request the upstream reads is counted (tool definitions, earlier
tool calls, response formats), and every non-ASCII character counts as a whole token (Cyrillic
and CJK text take far more tokens per character than English).
"""
import json
import math

IMAGE_TOKENS = 765        # OpenAI's figure for one high-detail 512px tile set; a fair reservation
MESSAGE_OVERHEAD = 4
PROMPT_EXTRAS = ("tools", "functions", "tool_choice", "response_format")


def estimate_text(text):
    """About 4 ASCII characters per token, one token per other character."""
    if not text:
        return 0
    other = len(text) - len(text.encode("ascii", "ignore"))
    return max(1, math.ceil((len(text) - other) / 4) + other)


def estimate_prompt(body):
    """A generous estimate of the prompt tokens of a chat request body."""
    total = 0
    for message in body.get("messages") or ():
        total += MESSAGE_OVERHEAD
        for field, value in message.items():
            if field == "content" and isinstance(value, list):
                total += sum(estimate_text(part.get("text") or "") if part.get("type") == "text" else IMAGE_TOKENS
                             for part in value)
            else:
                total += _estimate_value(value)
    return total + sum(_estimate_value(body.get(extra)) for extra in PROMPT_EXTRAS)


def _estimate_value(value):
    if value is None:
        return 0
    return estimate_text(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
