"""Translates OpenAI chat.completions to/from any OpenAI-compatible upstream (OpenAI, xAI, Groq,
Mistral, DeepSeek, OpenRouter, vLLM, Ollama…): configuration rows, not code."""
from gateway import errors
from gateway.providers.base import HttpCall, ProviderAdapter, json_event

# Only these request fields travel upstream: a body can never smuggle `api_base` or similar.
FORWARDED_FIELDS = (
    "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "n",
    "presence_penalty", "frequency_penalty", "seed", "user", "tools", "tool_choice",
    "response_format", "logit_bias", "logprobs", "top_logprobs", "parallel_tool_calls",
    "reasoning_effort", "metadata", "store", "service_tier", "prediction",
)


class OpenAICompatAdapter(ProviderAdapter):
    family = "openai"
    supports_embeddings = True

    def chat_call(self, target, body, stream):
        payload = {k: body[k] for k in FORWARDED_FIELDS if k in body}
        payload["model"] = target.model.upstream_name
        if stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}   # we always need usage to bill
        return HttpCall(f"{target.base_url}/chat/completions", self._headers(target), payload)

    def parse_chat(self, payload, target, body=None):
        if not isinstance(payload.get("choices"), list):
            raise errors.UpstreamError(errors.TRANSIENT, "upstream answer has no choices")
        return payload

    def stream_chunks(self, events, target, body=None):
        for event in events:
            if event.data.strip() == "[DONE]":
                return
            chunk = json_event(event)
            if "error" in chunk:
                raise errors.UpstreamError(errors.TRANSIENT, self.error_message(chunk) or "upstream stream error")
            yield chunk
        raise errors.UpstreamError(errors.TRANSIENT, "upstream stream ended without [DONE]")

    def embeddings_call(self, target, body):
        payload = {k: body[k] for k in ("input", "encoding_format", "dimensions", "user") if k in body}
        payload["model"] = target.model.upstream_name
        return HttpCall(f"{target.base_url}/embeddings", self._headers(target), payload)

    def parse_embeddings(self, payload, target):
        if not isinstance(payload.get("data"), list):
            raise errors.UpstreamError(errors.TRANSIENT, "upstream embeddings answer has no data")
        return payload

    def _headers(self, target):
        headers = dict(target.provider.headers)
        if target.key is not None:
            headers["Authorization"] = f"Bearer {target.key.secret}"
        return headers
