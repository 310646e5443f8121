"""Translates OpenAI chat.completions and embeddings to and from Google Gemini's
generateContent, streamGenerateContent (alt=sse) and batchEmbedContents."""
import json
import urllib.parse

from gateway import errors
from gateway.providers.base import HttpCall, ProviderAdapter, json_event
from gateway.providers.convert import (EFFORT_BUDGETS, add_turn, chunk, schema_tool, split_data_url, text_of,
                                       tool_arguments)
from gateway.tokens import estimate_text

FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter",
                  "BLOCKLIST": "content_filter", "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
                  "IMAGE_SAFETY": "content_filter"}
TOOL_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
_GENERATION_FIELDS = {"temperature": "temperature", "top_p": "topP", "seed": "seed",
                      "presence_penalty": "presencePenalty", "frequency_penalty": "frequencyPenalty"}
_UNSAFE_IN_NAME = ("/", "..", "?", "#", "%", "\\", ":")


class GeminiAdapter(ProviderAdapter):
    family = "gemini"
    supports_embeddings = True
    ignored_fields = ("logit_bias", "store", "metadata", "parallel_tool_calls", "service_tier", "prediction", "user")
    refused_fields = ("logprobs", "top_logprobs")

    def chat_call(self, target, body, stream):
        system, contents = to_gemini_contents(body["messages"])
        payload = {"contents": contents}
        if system:
            payload["systemInstruction"] = {"parts": [{"text": system}]}
        config = {name: body[field] for field, name in _GENERATION_FIELDS.items() if body.get(field) is not None}
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if limit:
            config["maxOutputTokens"] = limit
        if body.get("stop"):
            config["stopSequences"] = [body["stop"]] if isinstance(body["stop"], str) else body["stop"]
        if (body.get("response_format") or {}).get("type") == "json_object":
            config["responseMimeType"] = "application/json"
        if body.get("reasoning_effort") is not None:           # validated: one of EFFORT_BUDGETS
            config["thinkingConfig"] = {"thinkingBudget": EFFORT_BUDGETS[body["reasoning_effort"]]}
        if config:
            payload["generationConfig"] = config
        declarations = [_declaration(t) for t in body.get("tools") or () if t.get("type", "function") == "function"]
        tool_config = _tool_config(body.get("tool_choice"))
        answer = schema_tool(body.get("response_format"))
        if answer:                  # structured output as one forced function whose arguments are the answer
            declarations.append({"name": answer[0], "description": "Give the final answer with this function.",
                                 "parametersJsonSchema": answer[1]})
            tool_config = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [answer[0]]}}
        if declarations:
            payload["tools"] = [{"functionDeclarations": declarations}]
        if declarations and tool_config:
            payload["toolConfig"] = tool_config
        method, params = ("streamGenerateContent", {"alt": "sse"}) if stream else ("generateContent", None)
        return HttpCall(self._url(target, method), self._headers(target), payload, params)

    def parse_chat(self, payload, target, body=None):
        candidates = payload.get("candidates")
        if not candidates:
            if (payload.get("promptFeedback") or {}).get("blockReason"):
                return {"choices": [{"index": 0, "message": {"role": "assistant", "content": ""},
                                     "finish_reason": "content_filter"}], "usage": _usage(payload)}
            raise errors.UpstreamError(errors.TRANSIENT, "upstream answer has no candidates")
        candidate = candidates[0]
        text, tool_calls = _parts((candidate.get("content") or {}).get("parts") or (), _answer_tool(body))
        message = {"role": "assistant", "content": text or (None if tool_calls else "")}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return {"choices": [{"index": 0, "message": message, "finish_reason": _finish(candidate, tool_calls)}],
                "usage": _usage(payload)}

    def stream_chunks(self, events, target, body=None):
        """Every event is a whole GenerateContentResponse holding the next piece; the stream simply ends."""
        yield chunk({"role": "assistant", "content": ""})
        finished, calls, usage, answer_tool = False, 0, None, _answer_tool(body)
        for event in events:
            data = json_event(event)
            if "error" in data:
                raise errors.UpstreamError(errors.TRANSIENT, self.error_message(data) or "upstream stream error")
            if data.get("usageMetadata"):
                usage = _usage(data)
            for candidate in data.get("candidates") or ():
                text, tool_calls = _parts((candidate.get("content") or {}).get("parts") or (), answer_tool, calls)
                if text:
                    yield chunk({"content": text})
                if tool_calls:
                    yield chunk({"tool_calls": [{**c, "index": calls + i} for i, c in enumerate(tool_calls)]})
                    calls += len(tool_calls)
                if candidate.get("finishReason"):
                    finished = True
                    yield chunk({}, _finish(candidate, calls))
        if not finished:
            raise errors.UpstreamError(errors.TRANSIENT, "upstream stream ended without a finish reason")
        if usage:
            yield {"choices": [], "usage": usage}

    def embeddings_call(self, target, body):
        if isinstance(body["input"], list) and not isinstance(body["input"][0], str):
            raise errors.BadRequest("Gemini embeds text only: send 'input' as text, not token ids.", "input")
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        name = f"models/{_safe_name(target.model.upstream_name)}"
        payload = {"requests": [{"model": name, "content": {"parts": [{"text": text}]}} for text in inputs]}
        if body.get("dimensions"):
            for request in payload["requests"]:
                request["outputDimensionality"] = body["dimensions"]
        return HttpCall(self._url(target, "batchEmbedContents"), self._headers(target), payload)

    def embed(self, target, body, timeout, deadline=None):
        """Gemini reports no token usage for embeddings, so the gateway bills an estimate of the input."""
        result = super().embed(target, body, timeout, deadline)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        tokens = sum(estimate_text(text) for text in inputs)
        result["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return result

    def parse_embeddings(self, payload, target):
        vectors = payload.get("embeddings")
        if not isinstance(vectors, list):
            raise errors.UpstreamError(errors.TRANSIENT, "upstream embeddings answer has no embeddings")
        return {"data": [{"index": i, "embedding": v.get("values") or []} for i, v in enumerate(vectors)]}

    def classify(self, status, payload):
        """Gemini answers a bad API key with 400 INVALID_ARGUMENT: that is a key problem, not a request one."""
        if status == 400 and "API key" in self.error_message(payload):
            return errors.AUTH
        return super().classify(status, payload)

    def _url(self, target, method):
        return f"{target.base_url}/v1beta/models/{_safe_name(target.model.upstream_name)}:{method}"

    def _headers(self, target):
        headers = dict(target.provider.headers)
        if target.key is not None:
            headers["x-goog-api-key"] = target.key.secret       # a header, never the ?key= query string
        return headers


def to_gemini_contents(messages):
    """OpenAI messages as Gemini (system text, user/model contents); tool results answer by function name."""
    system, contents, call_names = [], [], {}
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(text_of(message.get("content")))
            continue
        if role in ("tool", "function"):
            name = call_names.get(message.get("tool_call_id")) or message.get("name") or "function"
            role, parts = "user", [{"functionResponse": {"name": name,
                                                         "response": {"content": text_of(message.get("content"))}}}]
        else:
            role = "model" if role == "assistant" else "user"
            parts = _content_parts(message.get("content"))
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                call_names[call.get("id")] = function.get("name")
                parts.append({"functionCall": {"name": function.get("name"),
                                               "args": tool_arguments(function.get("arguments"))}})
        add_turn(contents, role, parts, "parts")
    return "\n\n".join(s for s in system if s), contents


def _content_parts(content):
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts = []
    for part in content:
        if part.get("type") == "text":
            parts.append({"text": part.get("text") or ""})
        elif part.get("type") == "image_url":
            url = part["image_url"]["url"]
            inline = split_data_url(url)
            if inline:
                parts.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}})
            else:
                parts.append({"fileData": {"mimeType": "image/*", "fileUri": url}})
        elif part.get("type") == "file":
            inline = split_data_url(part["file"].get("file_data") or "")
            if not inline:
                raise errors.BadRequest("A Gemini upstream reads files sent inline ('file.file_data'), not by "
                                        "'file_id'.", "messages")
            parts.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}})
    return parts


def _answer_tool(body):
    """The name of the forced function that emulates structured output for this request, if any."""
    answer = schema_tool((body or {}).get("response_format"))
    return answer[0] if answer else None


def _parts(parts, answer_tool=None, first_index=0):
    """(text, tool calls) of an answer's parts; the answer tool's arguments are text (the structured answer)."""
    text, tool_calls = "", []
    for part in parts:
        if part.get("thought"):
            continue
        if "text" in part:
            text += part.get("text") or ""
        elif "functionCall" in part and answer_tool and part["functionCall"].get("name") == answer_tool:
            text += json.dumps(part["functionCall"].get("args") or {})
        elif "functionCall" in part:
            call = part["functionCall"]
            tool_calls.append({"id": f"call_{first_index + len(tool_calls) + 1}", "type": "function", "function": {
                "name": call.get("name"), "arguments": json.dumps(call.get("args") or {})}})
    return text, tool_calls


def _finish(candidate, tool_calls):
    if tool_calls:
        return "tool_calls"
    return FINISH_REASONS.get(candidate.get("finishReason"), "stop")


def _usage(payload):
    """Gemini usage as OpenAI's: the prompt count includes cached content; thoughts are output, named apart."""
    meta = payload.get("usageMetadata") or {}
    prompt, thoughts = int(meta.get("promptTokenCount") or 0), int(meta.get("thoughtsTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0) + thoughts
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": int(meta.get("cachedContentTokenCount") or 0)},
            "completion_tokens_details": {"reasoning_tokens": thoughts}}


def _declaration(tool):
    function = tool.get("function") or {}
    declaration = {"name": function.get("name"), "description": function.get("description", "")}
    if function.get("parameters"):
        declaration["parameters"] = function["parameters"]
    return declaration


def _tool_config(choice):
    if isinstance(choice, str) and choice in TOOL_MODES:
        return {"functionCallingConfig": {"mode": TOOL_MODES[choice]}}
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"functionCallingConfig": {"mode": "ANY",
                                          "allowedFunctionNames": [(choice.get("function") or {}).get("name")]}}
    return None


def _safe_name(name):
    """The model name goes into the URL path: anything that could change the path is refused."""
    if not name or any(bad in name for bad in _UNSAFE_IN_NAME):
        raise errors.UpstreamError(errors.REQUEST, f"model name {name!r} cannot be used in a Gemini URL", 400)
    return urllib.parse.quote(name, safe="-._~")
