"""Translates OpenAI chat.completions to and from Anthropic's Messages API (/v1/messages),
including images, tool calls, usage, stop reasons, errors and the event stream."""
import json

from gateway import errors
from gateway.providers.base import HttpCall, ProviderAdapter, json_event
from gateway.providers.convert import add_turn, chunk, split_data_url, text_of, tool_arguments

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096         # Anthropic requires max_tokens; OpenAI callers often omit it
FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
                  "tool_use": "tool_calls", "refusal": "content_filter"}


class AnthropicAdapter(ProviderAdapter):
    family = "anthropic"

    def chat_call(self, target, body, stream):
        system, messages = to_anthropic_messages(body["messages"])
        payload = {"model": target.model.upstream_name, "messages": messages,
                   "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS}
        if system:
            payload["system"] = system
        for name in ("temperature", "top_p"):
            if body.get(name) is not None:
                payload[name] = body[name]
        if body.get("stop"):
            payload["stop_sequences"] = [body["stop"]] if isinstance(body["stop"], str) else body["stop"]
        if body.get("user"):
            payload["metadata"] = {"user_id": body["user"]}
        if body.get("tools"):
            payload["tools"] = [_tool(t) for t in body["tools"] if t.get("type", "function") == "function"]
            choice = _tool_choice(body.get("tool_choice"))
            if choice:
                payload["tool_choice"] = choice
        if stream:
            payload["stream"] = True
        headers = {**dict(target.provider.headers), "anthropic-version": API_VERSION}
        if target.key is not None:
            headers["x-api-key"] = target.key.secret
        return HttpCall(f"{target.base_url}/v1/messages", headers, payload)

    def parse_chat(self, payload, target):
        if not isinstance(payload.get("content"), list):
            raise errors.UpstreamError(errors.TRANSIENT, "upstream answer has no content")
        text, tool_calls = "", []
        for block in payload["content"]:
            if block.get("type") == "text":
                text += block.get("text") or ""
            elif block.get("type") == "tool_use":
                tool_calls.append({"id": block.get("id"), "type": "function", "function": {
                    "name": block.get("name"), "arguments": json.dumps(block.get("input") or {})}})
        message = {"role": "assistant", "content": text or (None if tool_calls else "")}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return {"choices": [{"index": 0, "message": message,
                             "finish_reason": FINISH_REASONS.get(payload.get("stop_reason"), "stop")}],
                "usage": _usage(payload.get("usage"))}

    def stream_chunks(self, events, target):
        """message_start → content blocks → message_delta → message_stop, as OpenAI chunks."""
        prompt_usage, tool_index = {}, {}
        for event in events:
            data = json_event(event)
            kind = data.get("type")
            if kind == "message_start":
                prompt_usage = (data.get("message") or {}).get("usage") or {}
                yield chunk({"role": "assistant", "content": ""})
            elif kind == "content_block_start":
                block = data.get("content_block") or {}
                if block.get("type") == "tool_use":
                    tool_index[data.get("index")] = len(tool_index)
                    yield chunk({"tool_calls": [{"index": tool_index[data.get("index")], "id": block.get("id"),
                                                  "type": "function",
                                                  "function": {"name": block.get("name"), "arguments": ""}}]})
                elif block.get("type") == "text" and block.get("text"):
                    yield chunk({"content": block["text"]})
            elif kind == "content_block_delta":
                delta = data.get("delta") or {}
                if delta.get("type") == "text_delta":
                    yield chunk({"content": delta.get("text") or ""})
                elif delta.get("type") == "input_json_delta" and data.get("index") in tool_index:
                    yield chunk({"tool_calls": [{"index": tool_index[data["index"]],
                                                  "function": {"arguments": delta.get("partial_json") or ""}}]})
            elif kind == "message_delta":
                reason = (data.get("delta") or {}).get("stop_reason")
                usage = _usage({**prompt_usage, **(data.get("usage") or {})})
                yield chunk({}, FINISH_REASONS.get(reason, "stop"))
                yield {"choices": [], "usage": usage}
            elif kind == "message_stop":
                return
            elif kind == "error":
                raise errors.UpstreamError(errors.TRANSIENT, self.error_message(data) or "upstream stream error")
        raise errors.UpstreamError(errors.TRANSIENT, "upstream stream ended without message_stop")

    def classify(self, status, payload):
        """529 is Anthropic's "overloaded": transient, like 503."""
        return errors.TRANSIENT if status == 529 else super().classify(status, payload)


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
    usage = usage or {}
    prompt = sum(int(usage.get(k) or 0) for k in ("input_tokens", "cache_creation_input_tokens",
                                                   "cache_read_input_tokens"))
    completion = int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
