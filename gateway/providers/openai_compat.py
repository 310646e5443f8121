"""Translates OpenAI chat.completions to/from any OpenAI-compatible upstream (OpenAI, xAI, Groq,
Mistral, DeepSeek, OpenRouter, vLLM, Ollama…): configuration rows, not code. A /v1/responses
request goes whole to the upstream's own /responses where the provider says `responses = "native"`
(gateway.native), and its answer comes back as chat for the router plus the upstream's own (`native`)."""
from gateway import errors
from gateway.native import native_of
from gateway.passthrough import Relayed
from gateway.providers.base import MAX_JSON_BYTES, HttpCall, ProviderAdapter, ReadDeadline, read_capped, json_event
from gateway.providers.convert import chunk

# Only these request fields travel upstream: a body can never smuggle `api_base` or similar.
FORWARDED_FIELDS = (
    "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "n",
    "presence_penalty", "frequency_penalty", "seed", "user", "tools", "tool_choice",
    "response_format", "logit_bias", "logprobs", "top_logprobs", "parallel_tool_calls",
    "reasoning_effort", "metadata", "store", "service_tier", "prediction",
)
# What travels to the endpoints passed through unchanged (gateway.passthrough), besides the model.
RELAYED_FIELDS = {
    "moderations": ("input",),
    "images/generations": ("prompt", "n", "size", "quality", "response_format", "style", "background",
                           "moderation", "output_format", "output_compression", "user"),
    "audio/speech": ("input", "voice", "instructions", "response_format", "speed"),
    "audio/transcriptions": ("language", "prompt", "response_format", "temperature", "timestamp_granularities[]",
                             "include[]", "chunking_strategy"),
    "rerank": ("query", "documents", "top_n", "return_documents"),
}
INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


class OpenAICompatAdapter(ProviderAdapter):
    family = "openai"
    supports_embeddings = True

    def chat_call(self, target, body, stream):
        native = native_of(body, self.family)
        if native and _serves_responses(target):
            return self._responses_call(target, body, native, stream)
        if native and native["refused"]:
            name = native["refused"][0]
            raise errors.BadRequest(f"'{name}' needs an upstream that serves the Responses API itself; the "
                                    f"{target.provider.name} provider serving this model translates it to chat. "
                                    "Remove it or choose another model.", name, "unsupported_parameter")
        payload = {k: body[k] for k in FORWARDED_FIELDS if k in body}
        payload["model"] = target.model.upstream_name
        if stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}   # we always need usage to bill
        return HttpCall(f"{target.base_url}/chat/completions", self._headers(target), payload)

    def parse_chat(self, payload, target, body=None):
        if body and native_of(body, self.family) and _serves_responses(target):
            return _completion_of_response(payload)
        if not isinstance(payload.get("choices"), list):
            raise errors.UpstreamError(errors.TRANSIENT, "upstream answer has no choices")
        return payload

    def stream_chunks(self, events, target, body=None):
        if body and native_of(body, self.family) and _serves_responses(target):
            yield from self._response_chunks(events)
            return
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

    def relay(self, endpoint, target, body, timeout, deadline=None):
        """`body` to `{base_url}/{endpoint}` (a transcription as multipart with its file); the answer as it came."""
        fields = [(name, body[name]) for name in RELAYED_FIELDS[endpoint] if name in body]
        if endpoint == "audio/transcriptions":
            request = {"data": [("model", target.model.upstream_name)] + [
                (name, value) for name, values in fields for value in values], "files": {"file": body["file"]}}
        else:
            request = {"json": {"model": target.model.upstream_name, **dict(fields)}}
        response = self._post(f"{target.base_url}/{endpoint}", timeout, via=self._transport_for(target),
                              headers=self._headers(target), **request)
        content_type = response.header("Content-Type") or "application/octet-stream"
        if content_type.startswith("application/json"):
            return Relayed(None, content_type, self._read_json(response, deadline))
        try:
            return Relayed(read_capped(response, MAX_JSON_BYTES, ReadDeadline(deadline)), content_type)
        finally:
            response.close()

    def _responses_call(self, target, body, native, stream):
        """The caller's Responses request for `{base_url}/responses`, with the upstream's model name and
        the completion limit the gateway holds credit for."""
        payload = {**native["body"], "model": target.model.upstream_name,
                   "max_output_tokens": body.get("max_tokens") or body.get("max_completion_tokens")}
        payload.pop("stream", None)
        if stream:
            payload["stream"] = True
        return HttpCall(f"{target.base_url}/responses", self._headers(target), payload)

    def _response_chunks(self, events):
        """Responses events as chat chunks, each carrying its event (`native`); the terminal event
        carries the finish reason and usage. `response.failed`, `error` or an early end break the stream."""
        calls = {}            # output index -> chat tool-call index
        for event in events:
            data = json_event(event)
            kind = data.get("type")
            out = {"choices": []}
            if kind == "response.output_text.delta":
                out = chunk({"content": data.get("delta") or ""})
            elif kind == "response.output_item.added" and (data.get("item") or {}).get("type") == "function_call":
                item = data["item"]
                calls[data.get("output_index")] = len(calls)
                out = chunk({"tool_calls": [{"index": len(calls) - 1, "id": item.get("call_id"), "type": "function",
                                             "function": {"name": item.get("name"), "arguments": ""}}]})
            elif kind == "response.function_call_arguments.delta" and data.get("output_index") in calls:
                out = chunk({"tool_calls": [{"index": calls[data["output_index"]],
                                             "function": {"arguments": data.get("delta") or ""}}]})
            elif kind in ("response.completed", "response.incomplete"):
                completion = _completion_of_response(data.get("response") or {})
                out = {**chunk({}, completion["choices"][0]["finish_reason"]), "usage": completion["usage"]}
            elif kind in ("response.failed", "error"):
                failure = (data.get("response") or {}).get("error") if kind == "response.failed" else data
                raise errors.UpstreamError(errors.TRANSIENT, self.error_message({"error": failure}) or
                                           "upstream stream error")
            out["native"] = data
            yield out
            if kind in ("response.completed", "response.incomplete"):
                return
        raise errors.UpstreamError(errors.TRANSIENT, "upstream stream ended without response.completed")

    def _headers(self, target):
        headers = dict(target.provider.headers)
        if target.key is not None:
            headers["Authorization"] = f"Bearer {target.key.secret}"
        return headers


def _serves_responses(target):
    return target.provider.responses == "native"


def _completion_of_response(response):
    """An upstream's `response` object as a chat.completion (text, function calls, finish reason,
    usage), with the object itself as `native`. A failed response is a failed attempt."""
    if response.get("status") == "failed":
        raise errors.UpstreamError(errors.TRANSIENT, str((response.get("error") or {}).get("message") or
                                                         "upstream response failed"))
    if not isinstance(response.get("output"), list):
        raise errors.UpstreamError(errors.TRANSIENT, "upstream response has no output")
    text, calls = "", []
    for item in response["output"]:
        if item.get("type") == "message":
            text += "".join(part.get("text") or "" for part in item.get("content") or ()
                            if part.get("type") == "output_text")
        elif item.get("type") == "function_call":
            calls.append({"id": item.get("call_id"), "type": "function",
                          "function": {"name": item.get("name"), "arguments": item.get("arguments") or ""}})
    message = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    reason = (response.get("incomplete_details") or {}).get("reason")
    finish = INCOMPLETE_REASONS.get(reason, "length") if response.get("status") == "incomplete" else \
        "tool_calls" if calls else "stop"
    return {"choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": _usage(response.get("usage")), "native": response}


def _usage(usage):
    """Responses usage in chat's names, cached and reasoning tokens included."""
    usage = usage or {}
    prompt, completion = usage.get("input_tokens") or 0, usage.get("output_tokens") or 0
    out = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens")
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    if reasoning:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out
