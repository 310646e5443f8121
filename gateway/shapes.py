"""Final OpenAI shapes: whatever family answered, clients get schema-valid objects with the
catalog id of the model that answered (never the provider's internal name)."""
import time


def completion_out(body, request_id, model_id, cost=None):
    """A `chat.completion` with every field the official schema requires; `cost` (credits) goes in its usage."""
    choices = []
    for index, choice in enumerate(body.get("choices") or ()):
        message = dict(choice.get("message") or {})
        message.setdefault("role", "assistant")
        message.setdefault("content", None)
        message.setdefault("refusal", None)
        choices.append({"index": choice.get("index", index), "message": message,
                        "finish_reason": choice.get("finish_reason") or "stop", "logprobs": choice.get("logprobs")})
    return {"id": f"chatcmpl-{request_id}", "object": "chat.completion", "created": body.get("created") or int(time.time()),
            "model": model_id, "choices": choices, "usage": usage_out({**(body.get("usage") or {}), "cost": cost})}


def chunk_out(chunk, request_id, model_id, created):
    """A `chat.completion.chunk` rewritten in place (the hot path of streaming)."""
    chunk["id"] = f"chatcmpl-{request_id}"
    chunk["object"] = "chat.completion.chunk"
    chunk["created"] = created
    chunk["model"] = model_id
    for choice in chunk.get("choices") or ():
        choice.setdefault("finish_reason", None)
        choice.setdefault("delta", {})
    if chunk.get("usage"):
        chunk["usage"] = usage_out(chunk["usage"])
    return chunk


def usage_out(usage):
    """OpenAI usage: the counts, the cached and reasoning details when the upstream gave them, and `cost` (credits)."""
    usage = usage or {}
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    out = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    for name in ("prompt_tokens_details", "completion_tokens_details", "cost"):
        if usage.get(name) is not None:
            out[name] = usage[name]
    return out


def embeddings_out(body, model_id):
    data = [{"object": "embedding", "index": item.get("index", i), "embedding": item["embedding"]}
            for i, item in enumerate(body.get("data") or ())]
    usage = body.get("usage") or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    return {"object": "list", "data": data, "model": model_id,
            "usage": {"prompt_tokens": prompt, "total_tokens": int(usage.get("total_tokens") or prompt)}}


def error_body(message, type_="invalid_request_error", code=None, param=None, extra=None):
    """OpenAI's error shape, which the SDKs parse (extra fields such as `limit_source` ride along)."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code, **(extra or {})}}


def relayed_out(payload, model_id):
    """A relayed endpoint's JSON answer (gateway.passthrough), naming the catalog model if it names one."""
    return {**payload, "model": model_id} if "model" in payload else payload
