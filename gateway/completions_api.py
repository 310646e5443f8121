"""Legacy text completions (/v1/completions) as a front door: the prompt becomes one user message
for the one routing pipeline, and chat answers and chunks become `text_completion` objects.

What only a raw completion model can do (echo, logprobs, best_of, suffix for fill-in-the-middle)
is refused with a 400 naming the parameter, never silently ignored.
"""
import time

from gateway import validation
from gateway.errors import BadRequest
from gateway.shapes import usage_out

DEFAULT_MAX_TOKENS = 16          # OpenAI's default for this endpoint
_COPIED = ("model", "models", "max_tokens", "temperature", "top_p", "n", "stop", "presence_penalty",
           "frequency_penalty", "seed", "user", "stream", "stream_options", "logit_bias")
_REFUSED = {"echo": lambda v: v is True, "logprobs": lambda v: v is not None, "suffix": lambda v: bool(v),
            "best_of": lambda v: v not in (None, 1)}


def chat_request(body):
    """A /v1/completions body as a chat body (validated like /v1/chat/completions).

    :raise BadRequest: naming the first bad or unsupported field.
    """
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    for name, refused in _REFUSED.items():
        if refused(body.get(name)):
            raise BadRequest(f"'{name}' is not supported: completions are served through chat models.", name)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise BadRequest("'prompt' must be a non-empty string (or an array of exactly one).", "prompt")
    chat = {name: body[name] for name in _COPIED if body.get(name) is not None}
    chat["messages"] = [{"role": "user", "content": prompt}]
    chat.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    try:
        return validation.chat_request(chat)
    except BadRequest as exc:       # only `prompt` became messages
        raise BadRequest(exc.message, "prompt" if (exc.param or "").startswith("messages") else exc.param) from None


def completion_from_chat(completion, request_id, model_id):
    """A chat.completion as a `text_completion`."""
    choices = [{"text": (choice.get("message") or {}).get("content") or "", "index": choice.get("index", i),
                "logprobs": None, "finish_reason": choice.get("finish_reason") or "stop"}
               for i, choice in enumerate(completion.get("choices") or ())]
    return {"id": f"cmpl-{request_id}", "object": "text_completion", "created": int(time.time()), "model": model_id,
            "choices": choices, "usage": usage_out(completion.get("usage"))}


def chunk_from_chat(chunk, request_id, model_id, created):
    """A chat.completion.chunk as a streamed `text_completion` (the usage chunk has no choices)."""
    choices = [{"text": (choice.get("delta") or {}).get("content") or "", "index": choice.get("index", 0),
                "logprobs": None, "finish_reason": choice.get("finish_reason")}
               for choice in chunk.get("choices") or ()]
    out = {"id": f"cmpl-{request_id}", "object": "text_completion", "created": created, "model": model_id,
           "choices": choices}
    if chunk.get("usage"):
        out["usage"] = usage_out(chunk["usage"])
    return out
