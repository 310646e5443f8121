"""Token counts the gateway makes itself: an upper bound for holds, estimates for what it bills.

A hold must be a true upper bound of the cost, or a request can spend credit it does not have:
no tokenizer yields more tokens than the text has UTF-8 bytes, so `prompt_bound` counts bytes of
everything the upstream reads (messages, tool definitions, earlier tool calls, response formats).
A stream that ends without usage is billed on `estimate_prompt` and `estimate_text` instead (about
4 ASCII characters a token, every other character a token), which err high but not fourfold.
"""
import json
import math

from gateway.native import NATIVE

IMAGE_TOKENS = 765        # OpenAI's figure for one high-detail 512px tile set; a fair estimate
IMAGE_TOKENS_BOUND = 2_000  # more than any family bills one image (OpenAI ≤ 1,105 tiles+base, Anthropic ≤ 1,600)
MESSAGE_OVERHEAD = 4
PROMPT_EXTRAS = ("tools", "functions", "tool_choice", "response_format")


def estimate_text(text):
    """About 4 ASCII characters per token, one token per other character."""
    if not text:
        return 0
    other = len(text) - len(text.encode("ascii", "ignore"))
    return max(1, math.ceil((len(text) - other) / 4) + other)


def bound_text(text):
    """No tokenizer makes more tokens of a text than it has UTF-8 bytes."""
    return len(text.encode("utf-8", "surrogatepass")) if text else 0


def estimate_prompt(body):
    """A generous estimate of the prompt tokens of a chat request body."""
    return _count_prompt(body, estimate_text, IMAGE_TOKENS)


def prompt_bound(body):
    """At least as many tokens as any upstream can count in a chat request body; a request that also
    travels whole in its native form (thinking blocks, documents the OpenAI form lacks) is bounded by
    that form's bytes too."""
    bound = _count_prompt(body, bound_text, IMAGE_TOKENS_BOUND)
    native = body.get(NATIVE)
    return max(bound, _count_value(native["body"], bound_text)) if native else bound


def input_bound(body):
    """At least as many tokens as any upstream can count in an embeddings `input` (texts or token ids)."""
    value = body["input"]
    items = value if isinstance(value, list) else [value]
    return sum(bound_text(item) if isinstance(item, str) else len(item) if isinstance(item, list) else 1
               for item in items)


def _count_prompt(body, count, image_tokens):
    total = 0
    for message in body.get("messages") or ():
        total += MESSAGE_OVERHEAD
        for field, value in message.items():
            if field == "content" and isinstance(value, list):
                total += sum(_count_part(part, count, image_tokens) for part in value)
            else:
                total += _count_value(value, count)
    return total + sum(_count_value(body.get(extra), count) for extra in PROMPT_EXTRAS)


def _count_part(part, count, image_tokens):
    """A text part by its text, an image as one image; a file (a PDF) by its encoded bytes besides."""
    if part.get("type") == "text":
        return count(part.get("text") or "")
    if part.get("type") == "file":
        return image_tokens + _count_value(part.get("file"), count)
    return image_tokens


def _count_value(value, count):
    if value is None:
        return 0
    return count(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
