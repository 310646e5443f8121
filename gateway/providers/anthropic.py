"""Translates OpenAI chat.completions to and from Anthropic's Messages API (/v1/messages),
including images, documents, tool calls, thinking, usage (cache reads and writes), stop reasons,
errors and the event stream; structured output and reasoning_effort are emulated. A request that
came in Anthropic's own format is sent whole instead, and answered with Anthropic's own answer
(gateway.native)."""
import json

from gateway import answers, errors
from gateway.native import native_of
from gateway.providers.base import HttpCall, ProviderAdapter, json_event
from gateway.providers.convert import (EFFORT_BUDGETS, add_turn, chunk, schema_tool, split_data_url, text_of,
                                       tool_arguments)

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096         # Anthropic requires max_tokens; OpenAI callers often omit it
MIN_THINKING_BUDGET = 1024        # Anthropic's smallest thinking budget
COUNTED_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking")   # what count_tokens reads
FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
                  "tool_use": "tool_calls", "refusal": "content_filter"}


class AnthropicAdapter(ProviderAdapter):
    family = "anthropic"
    ignored_fields = ("seed", "presence_penalty", "frequency_penalty", "logit_bias", "store", "metadata",
                      "service_tier", "prediction")
    refused_fields = ("logprobs", "top_logprobs")

    def chat_call(self, target, body, stream):
        native = native_of(body, self.family)
        payload = _native_payload(native, stream) if native else _payload(body, stream)
        payload["model"] = target.model.upstream_name
        headers = {**dict(target.provider.headers), "anthropic-version": API_VERSION}
        if native:
            headers.update(native["headers"])         # the caller's anthropic-version and -beta (allow-listed)
        if target.key is not None:
            headers["x-api-key"] = target.key.secret
        return HttpCall(f"{target.base_url}/v1/messages", headers, payload)

    def count_tokens(self, target, body, timeout, deadline=None):
        """Anthropic's own count (/v1/messages/count_tokens, free), for the request as it would be sent."""
        call = self.chat_call(target, body, stream=False)
        call.json = {name: call.json[name] for name in COUNTED_FIELDS if name in call.json}
        call.url += "/count_tokens"
        payload = self._read_json(self._send(call, timeout, target), deadline)
        count = answers.usage({"prompt_tokens": payload.get("input_tokens")}).get("prompt_tokens")
        if count is None:
            raise errors.UpstreamError(errors.TRANSIENT, "upstream count has no input_tokens", 200)
        return count

    def dropped_params(self, body):
        dropped = super().dropped_params(body)
        if native_of(body, self.family) is None:
            if body.get("reasoning_effort") not in (None, "none") and _thinking(body) is None:
                dropped.append("reasoning_effort")
            if _thinking(body) and body.get("temperature") is not None:
                dropped.append("temperature")           # Anthropic thinks at its default temperature only
            if (body.get("response_format") or {}).get("type") == "json_object":
                dropped.append("response_format")
        return dropped

    def parse_chat(self, payload, target, body=None):
        if not isinstance(payload.get("content"), list):
            raise errors.UpstreamError(errors.TRANSIENT, "upstream answer has no content")
        answer_tool = _answer_tool(body)
        text, thinking, tool_calls = "", "", []
        for block in payload["content"]:
            if block.get("type") == "text":
                text += block.get("text") or ""
            elif block.get("type") == "thinking":
                thinking += block.get("thinking") or ""
            elif block.get("type") == "tool_use" and block.get("name") == answer_tool:
                text += json.dumps(block.get("input") or {})
            elif block.get("type") == "tool_use":
                tool_calls.append({"id": block.get("id"), "type": "function", "function": {
                    "name": block.get("name"), "arguments": json.dumps(block.get("input") or {})}})
        message = {"role": "assistant", "content": text or (None if tool_calls else "")}
        if thinking:
            message["reasoning_content"] = thinking
        if tool_calls:
            message["tool_calls"] = tool_calls
        reason = "end_turn" if answer_tool and not tool_calls else payload.get("stop_reason")
        completion = {"choices": [{"index": 0, "message": message, "finish_reason": FINISH_REASONS.get(reason, "stop")}],
                      "usage": _usage(payload.get("usage"))}
        if body and native_of(body, self.family):
            completion["native"] = payload          # /v1/messages relays the upstream's own message
        return completion

    def stream_chunks(self, events, target, body=None):
        """message_start → content blocks → message_delta → message_stop, as OpenAI chunks; for a native
        request every chunk also carries the upstream's own event (`native`), for /v1/messages to relay."""
        native, answer_tool = bool(body and native_of(body, self.family)), _answer_tool(body)
        for data, out, usage in self._translated(events, answer_tool):
            if native:
                out = out or {"choices": []}
                out["native"] = data
            if native and usage is not None:
                out["usage"], usage = usage, None        # on the message_delta it belongs to, for its `cost`
            if out is not None:
                yield out
            if usage is not None:
                yield {"choices": [], "usage": usage}
            if data.get("type") == "message_stop":
                return
        raise errors.UpstreamError(errors.TRANSIENT, "upstream stream ended without message_stop")

    def _translated(self, events, answer_tool):
        """(upstream event, its OpenAI chunk or None, the final usage or None) for each event."""
        prompt_usage, tool_index, answer_blocks = {}, {}, set()
        for event in events:
            data = json_event(event)
            kind, out, usage = data.get("type"), None, None
            if kind == "message_start":
                prompt_usage = (data.get("message") or {}).get("usage") or {}
                out = chunk({"role": "assistant", "content": ""})
            elif kind == "content_block_start":
                block = data.get("content_block") or {}
                if block.get("type") == "tool_use" and block.get("name") == answer_tool:
                    answer_blocks.add(data.get("index"))
                elif block.get("type") == "tool_use":
                    tool_index[data.get("index")] = len(tool_index)
                    out = chunk({"tool_calls": [{"index": tool_index[data.get("index")], "id": block.get("id"),
                                                 "type": "function", "function": {"name": block.get("name"),
                                                                                  "arguments": ""}}]})
                elif block.get("type") == "text" and block.get("text"):
                    out = chunk({"content": block["text"]})
            elif kind == "content_block_delta":
                out = _delta_chunk(data, tool_index, answer_blocks)
            elif kind == "message_delta":
                reason = (data.get("delta") or {}).get("stop_reason")
                reason = "end_turn" if answer_blocks and not tool_index else reason
                usage = _usage({**prompt_usage, **(data.get("usage") or {})})
                out = chunk({}, FINISH_REASONS.get(reason, "stop"))
            elif kind == "error":
                raise errors.UpstreamError(errors.TRANSIENT, self.error_message(data) or "upstream stream error")
            yield data, out, usage

    def classify(self, status, payload):
        """529 is Anthropic's "overloaded": transient, like 503."""
        return errors.TRANSIENT if status == 529 else super().classify(status, payload)


def _delta_chunk(data, tool_index, answer_blocks):
    delta, index = data.get("delta") or {}, data.get("index")
    if delta.get("type") == "text_delta":
        return chunk({"content": delta.get("text") or ""})
    if delta.get("type") == "thinking_delta":
        return chunk({"reasoning_content": delta.get("thinking") or ""})
    if delta.get("type") == "input_json_delta" and index in answer_blocks:
        return chunk({"content": delta.get("partial_json") or ""})
    if delta.get("type") == "input_json_delta" and index in tool_index:
        return chunk({"tool_calls": [{"index": tool_index[index], "function": {"arguments": delta.get("partial_json") or ""}}]})
    return None


def _native_payload(native, stream):
    """The caller's own Anthropic request, whole: cache_control, thinking signatures, top_k, betas' fields."""
    payload = dict(native["body"])
    payload.pop("stream", None)
    if stream:
        payload["stream"] = True
    return payload


def _payload(body, stream):
    """An OpenAI-form request as Anthropic's: emulating structured output (one forced tool) and
    reasoning_effort (a thinking budget), mapping parallel_tool_calls."""
    system, messages = to_anthropic_messages(body["messages"])
    payload = {"messages": messages, "max_tokens": _limit(body)}
    if system:
        payload["system"] = system
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            payload[name] = body[name]
    if body.get("stop"):
        payload["stop_sequences"] = [body["stop"]] if isinstance(body["stop"], str) else body["stop"]
    if body.get("user"):
        payload["metadata"] = {"user_id": body["user"]}
    tools = [_tool(t) for t in body.get("tools") or () if t.get("type", "function") == "function"]
    choice = _tool_choice(body.get("tool_choice"))
    answer = schema_tool(body.get("response_format"))
    if answer:
        tools.append({"name": answer[0], "description": "Give the final answer with this tool.", "input_schema": answer[1]})
        choice = {"type": "tool", "name": answer[0]}
    if tools:
        payload["tools"] = tools
    if body.get("parallel_tool_calls") is False and tools:
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice and tools:
        payload["tool_choice"] = choice
    thinking = _thinking(body)
    if thinking:
        payload["thinking"] = thinking
        payload.pop("temperature", None)        # Anthropic requires the default temperature while thinking (listed)
    if stream:
        payload["stream"] = True
    return payload


def _limit(body):
    return body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS


def _thinking(body):
    """reasoning_effort as a thinking budget within max_tokens; None where Anthropic cannot think
    (a forced answer tool, or too small a limit for its 1,024-token minimum budget)."""
    effort = body.get("reasoning_effort")
    if effort in (None, "none") or schema_tool(body.get("response_format")):
        return None
    budget = min(EFFORT_BUDGETS[effort], _limit(body) - 1)
    return {"type": "enabled", "budget_tokens": budget} if budget >= MIN_THINKING_BUDGET else None


def _answer_tool(body):
    """The name of the forced tool that emulates structured output for this request, if any."""
    answer = schema_tool((body or {}).get("response_format")) if body and not native_of(body, "anthropic") else None
    return answer[0] if answer else None


def to_anthropic_messages(messages):
    """Split OpenAI messages into Anthropic's (system text, alternating user/assistant turns)."""
    system, turns = [], []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(text_of(message.get("content")))
            continue
        if role in ("tool", "function"):
            role, blocks = "user", [{"type": "tool_result", "tool_use_id": message.get("tool_call_id") or "",
                                     "content": text_of(message.get("content"))}]
        else:
            role = "assistant" if role == "assistant" else "user"
            blocks = _blocks(message.get("content"))
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                blocks.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"),
                               "input": tool_arguments(function.get("arguments"))})
        add_turn(turns, role, blocks, "content")
    return "\n\n".join(s for s in system if s), turns


def _blocks(content):
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content:
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": part.get("text") or ""})
        elif part.get("type") == "image_url":
            blocks.append({"type": "image", "source": image_source(part["image_url"]["url"])})
        elif part.get("type") == "file":
            inline = split_data_url(part["file"].get("file_data") or "")
            if not inline:
                raise errors.BadRequest("An Anthropic upstream reads files sent inline ('file.file_data'), "
                                        "not by 'file_id'.", "messages")
            blocks.append({"type": "document", "source": {"type": "base64", "media_type": inline[0], "data": inline[1]}})
    return blocks


def image_source(url):
    """A data: URL becomes a base64 source, anything else a URL source."""
    inline = split_data_url(url)
    if inline:
        return {"type": "base64", "media_type": inline[0], "data": inline[1]}
    return {"type": "url", "url": url}


def _tool(tool):
    function = tool.get("function") or {}
    return {"name": function.get("name"), "description": function.get("description", ""),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}}}


def _tool_choice(choice):
    if choice in (None, "auto"):
        return {"type": "auto"} if choice else None
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    return None


def _usage(usage):
    """Anthropic usage as OpenAI's: `prompt_tokens` counts cache reads and writes too, which the details name."""
    usage = usage or {}
    read, written = int(usage.get("cache_read_input_tokens") or 0), int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + read + written
    completion = int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": written}}
