"""The offline demo provider: answers in OpenAI shapes without any network, so a fresh install
can chat at once. Its answers say plainly that they come from the demo."""
import hashlib
import math
import time

from gateway.providers.base import ProviderAdapter, UpstreamStream
from gateway.tokens import estimate_prompt, estimate_text

WORD_PACE_S = 0.02        # streams arrive word by word, like a real model


def demo_reply(messages):
    """A deterministic answer that echoes the last user text."""
    last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    content = last.get("content")
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    said = (content or "").strip() or "nothing"
    if len(said) > 200:
        said = said[:200] + "…"
    return f"This is the demo model: no upstream was called. You said: {said}"


class DemoAdapter(ProviderAdapter):
    family = "demo"
    supports_embeddings = True

    def __init__(self, transport=None, user_url_transport=None, pace_s=WORD_PACE_S):
        super().__init__(transport, user_url_transport)
        self.pace_s = pace_s

    def complete(self, target, body, timeout, deadline=None):
        text = self._limit(demo_reply(body["messages"]), body)
        return {
            "id": "chatcmpl-demo", "object": "chat.completion", "created": int(time.time()),
            "model": target.model.upstream_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": self._usage(body, text),
        }

    def open_stream(self, target, body, timeout, deadline=None):
        return UpstreamStream(self._chunks(target, body), lambda: None)

    def embed(self, target, body, timeout, deadline=None):
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": _vector(str(text))} for i, text in enumerate(inputs)]
        tokens = sum(estimate_text(str(text)) for text in inputs)
        return {"object": "list", "data": data, "model": target.model.upstream_name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def _chunks(self, target, body):
        text = self._limit(demo_reply(body["messages"]), body)
        base = {"id": "chatcmpl-demo", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": target.model.upstream_name}
        yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        for i, word in enumerate(text.split(" ")):
            if i and self.pace_s:
                time.sleep(self.pace_s)
            piece = word if i == 0 else " " + word
            yield {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        yield {**base, "choices": [], "usage": self._usage(body, text)}

    @staticmethod
    def _limit(text, body):
        """Honour max_tokens roughly (4 characters a token), as a real model would."""
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        return text[: limit * 4] if limit else text

    @staticmethod
    def _usage(body, text):
        prompt, completion = estimate_prompt(body), estimate_text(text)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _vector(text, size=16):
    """A stable unit vector from a hash: useless semantically, honest as a demo."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [(b - 127.5) / 127.5 for b in digest[:size]]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]
