"""GigaChat (Sber): an OAuth token exchange in front of an OpenAI-like chat API.

The configured key is the *authorization key*: it is sent only to the OAuth endpoint (Basic),
which answers a bearer token valid about 30 minutes. Tokens are cached per key (by a digest of it, never a reusable id) and renewed a
minute before they expire; a 401 from the chat endpoint drops the token and retries once with
a fresh one before the key is called bad. TLS is verified against the operator's `ca_bundle`
(GigaChat uses the Russian Trusted Root CA), never switched off. Functions, GigaChat's form of
tool calls, are translated both ways.
"""
import json
import threading
import time
import uuid
from dataclasses import replace


from gateway import errors
from gateway.providers.base import HttpCall, ProviderAdapter, json_event
from gateway.providers.convert import text_of, tool_arguments

RENEW_BEFORE_S = 60
FINISH_REASONS = {"stop": "stop", "length": "length", "function_call": "tool_calls", "blacklist": "content_filter"}
_FORWARDED = ("temperature", "top_p", "max_tokens", "stream", "repetition_penalty")


class GigaChatAdapter(ProviderAdapter):
    family = "gigachat"
    ignored_fields = ("stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias", "store", "metadata",
                      "parallel_tool_calls", "reasoning_effort", "user", "service_tier", "prediction")
    refused_fields = ("logprobs", "top_logprobs")

    def __init__(self, transport=None, user_url_transport=None):
        super().__init__(transport, user_url_transport)
        self._tokens = {}                  # key fingerprint -> (access token, expires at, epoch seconds)
        self._lock = threading.Lock()

    # --- transport: a bearer token in place of the authorization key ----------------------
    def complete(self, target, body, timeout, deadline=None):
        self.refuse_unsupported(body)                # before the token exchange, too
        return self._authorized(target, timeout,
                                lambda t: super(GigaChatAdapter, self).complete(t, body, timeout, deadline))

    def open_stream(self, target, body, timeout, deadline=None):
        self.refuse_unsupported(body)
        return self._authorized(target, timeout,
                                lambda t: super(GigaChatAdapter, self).open_stream(t, body, timeout, deadline))

    def _authorized(self, target, timeout, call):
        bearer = self._with_token(target, timeout)
        try:
            return call(bearer)
        except errors.UpstreamError as exc:
            if exc.status != 401:
                raise
            self._forget(target.key)                 # the token expired early: one fresh try
            return call(self._with_token(target, timeout))

    def _with_token(self, target, timeout):
        if target.key is None:
            raise errors.UpstreamError(errors.AUTH, "GigaChat needs an authorization key", 401)
        return replace(target, key=replace(target.key, secret=self._token(target, timeout)))

    def _token(self, target, timeout):
        with self._lock:
            cached = self._tokens.get(target.key.fingerprint)
        if cached and cached[1] - RENEW_BEFORE_S > time.time():
            return cached[0]
        token, expires_at = self._exchange(target, timeout)
        with self._lock:
            self._tokens[target.key.fingerprint] = (token, expires_at)
        return token

    def _forget(self, key):
        with self._lock:
            self._tokens.pop(key.fingerprint, None)

    def _exchange(self, target, timeout):
        """POST the authorization key to the OAuth endpoint; errors are classified like any upstream's."""
        provider = target.provider
        response = self._post(provider.auth_url, timeout, "GigaChat token exchange", data={"scope": provider.scope},
                              verify=provider.ca_bundle or True,
                              headers={"Authorization": f"Basic {target.key.secret}", "RqUID": str(uuid.uuid4()),
                                       "Accept": "application/json"})
        payload = self._read_json(response)
        token, expires_at = payload.get("access_token"), payload.get("expires_at")
        if not isinstance(token, str) or not isinstance(expires_at, (int, float)):
            raise errors.UpstreamError(errors.TRANSIENT, "GigaChat token answer has no access_token/expires_at")
        return token, expires_at / 1000

    # --- translation -----------------------------------------------------------------------
    def refuse_unsupported(self, body):
        """GigaChat has no JSON mode to build structured output on: refused rather than answered in prose."""
        super().refuse_unsupported(body)
        if (body.get("response_format") or {}).get("type") in ("json_object", "json_schema"):
            raise errors.BadRequest("'response_format' (JSON output) cannot be honoured by the gigachat upstream "
                                    "serving this model; remove it or choose another model.", "response_format",
                                    "unsupported_parameter")

    def dropped_params(self, body):
        """GigaChat reads text only: image and file parts are listed too."""
        dropped = super().dropped_params(body)
        if any(isinstance(m.get("content"), list) and any(p.get("type") != "text" for p in m["content"])
               for m in body["messages"]):
            dropped.append("messages.content (image and file parts)")
        return dropped

    def chat_call(self, target, body, stream):
        payload = {k: body[k] for k in _FORWARDED if k in body}
        payload["model"] = target.model.upstream_name
        payload["messages"] = to_gigachat_messages(body["messages"])
        if body.get("max_completion_tokens"):
            payload["max_tokens"] = body["max_completion_tokens"]
        if body.get("tools"):
            payload["functions"] = [t["function"] for t in body["tools"] if t.get("type", "function") == "function"]
            choice = body.get("tool_choice")
            if choice in ("auto", "none"):
                payload["function_call"] = choice
            elif isinstance(choice, dict) and choice.get("type") == "function":
                payload["function_call"] = {"name": (choice.get("function") or {}).get("name")}
        payload["stream"] = stream
        headers = {**dict(target.provider.headers), "Authorization": f"Bearer {target.key.secret}"}
        return HttpCall(f"{target.base_url}/chat/completions", headers, payload,
                        verify=target.provider.ca_bundle or True)

    def parse_chat(self, payload, target, body=None):
        if not isinstance(payload.get("choices"), list):
            raise errors.UpstreamError(errors.TRANSIENT, "upstream answer has no choices")
        choices = []
        for index, choice in enumerate(payload["choices"]):
            message = dict(choice.get("message") or {})
            call = message.pop("function_call", None)
            message.pop("functions_state_id", None)
            if call:
                message["tool_calls"] = [_tool_call(call, index)]
                message["content"] = message.get("content") or None
            choices.append({"index": index, "message": message,
                            "finish_reason": FINISH_REASONS.get(choice.get("finish_reason"), "stop")})
        return {"choices": choices, "usage": payload.get("usage") or {}}

    def stream_chunks(self, events, target, body=None):
        calls = 0
        for event in events:
            if event.data.strip() == "[DONE]":
                return
            data = json_event(event)
            if "choices" not in data:
                raise errors.UpstreamError(errors.TRANSIENT, self.error_message(data) or "upstream stream error")
            for choice in data["choices"]:
                delta = dict(choice.get("delta") or {})
                call = delta.pop("function_call", None)
                delta.pop("functions_state_id", None)
                if call:
                    delta["tool_calls"] = [{**_tool_call(call, calls), "index": calls}]
                    calls += 1
                reason = choice.get("finish_reason")
                yield {"choices": [{"index": choice.get("index", 0), "delta": delta,
                                    "finish_reason": FINISH_REASONS.get(reason, "stop") if reason else None}]}
            if data.get("usage"):
                yield {"choices": [], "usage": data["usage"]}
        raise errors.UpstreamError(errors.TRANSIENT, "upstream stream ended without [DONE]")


def to_gigachat_messages(messages):
    """OpenAI messages as GigaChat's: tool calls become `function_call`, tool results `function` messages."""
    names, out = {}, []
    for message in messages:
        role = message.get("role")
        if role in ("tool", "function"):
            out.append({"role": "function", "name": names.get(message.get("tool_call_id")) or message.get("name") or "",
                        "content": text_of(message.get("content"))})
            continue
        converted = {"role": "system" if role == "developer" else role, "content": text_of(message.get("content"))}
        for call in (message.get("tool_calls") or ())[:1]:         # GigaChat carries one call per message
            function = call.get("function") or {}
            names[call.get("id")] = function.get("name")
            converted["function_call"] = {"name": function.get("name"),
                                          "arguments": tool_arguments(function.get("arguments"))}
        out.append(converted)
    return out


def _tool_call(call, index):
    arguments = call.get("arguments")
    return {"id": f"call_{index + 1}", "type": "function",
            "function": {"name": call.get("name"),
                         "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments or {})}}
