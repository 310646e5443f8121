"""The Anthropic Messages API as a front door: requests become OpenAI-shaped bodies for the one
routing pipeline, and OpenAI answers and chunks become Anthropic messages and events."""
import json

from gateway import validation
from gateway.errors import BadRequest, StreamInterrupted
from gateway.sse import encode_event

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               504: "timeout_error", 529: "overloaded_error"}
_COPIED = {"temperature": "temperature", "top_p": "top_p", "stop_sequences": "stop", "stream": "stream"}


def request_from_anthropic(body):
    """An Anthropic /v1/messages body as an OpenAI chat body (validated like /v1/chat/completions).

    :raise BadRequest: naming the first bad field.
    """
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    if not isinstance(body.get("max_tokens"), int) or isinstance(body.get("max_tokens"), bool):
        raise BadRequest("'max_tokens' is required and must be an integer.", "max_tokens")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise BadRequest("'messages' must be a non-empty array.", "messages")
    messages = []
    if body.get("system"):
        messages.append({"role": "system", "content": _system_text(body["system"])})
    for i, message in enumerate(body["messages"]):
        messages += _from_message(message, f"messages[{i}]")
    chat = {"model": body.get("model"), "messages": messages, "max_tokens": body["max_tokens"]}
    chat.update({ours: body[theirs] for theirs, ours in _COPIED.items() if body.get(theirs) is not None})
    if isinstance((body.get("metadata") or {}).get("user_id"), str):
        chat["user"] = body["metadata"]["user_id"]
    if body.get("tools"):
        chat["tools"] = [_tool(t) for t in body["tools"]]
        choice = _tool_choice(body.get("tool_choice"))
        if choice:
            chat["tool_choice"] = choice
    return validation.chat_request(chat)


def message_from_completion(completion, model_id, message_id):
    """An OpenAI chat.completion as an Anthropic `message`."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content = [{"type": "text", "text": message["content"]}] if message.get("content") else []
    for call in message.get("tool_calls") or ():
        content.append(_tool_use(call))
    usage = completion.get("usage") or {}
    return {"id": message_id, "type": "message", "role": "assistant", "model": model_id, "content": content,
            "stop_reason": STOP_REASONS.get(choice.get("finish_reason"), "end_turn"), "stop_sequence": None,
            "usage": {"input_tokens": int(usage.get("prompt_tokens") or 0),
                      "output_tokens": int(usage.get("completion_tokens") or 0)}}


def stream_from_chunks(chunks, model_id, message_id):
    """OpenAI chunks as Anthropic SSE events (bytes), from message_start to message_stop.

    A StreamInterrupted raised by `chunks` ends the stream with an `error` event and no
    message_stop, so the client knows the answer is incomplete.
    """
    yield encode_event("message_start", {"type": "message_start", "message": {
        "id": message_id, "type": "message", "role": "assistant", "model": model_id, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}})
    blocks = _Blocks()
    stop_reason, usage = "end_turn", {}
    try:
        for chunk in chunks:
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                yield from blocks.feed(choice.get("delta") or {})
                if choice.get("finish_reason"):
                    stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
    except StreamInterrupted as exc:
        yield encode_event("error", error_body(502, exc.message))
        return
    yield from blocks.close()
    yield encode_event("message_delta", {"type": "message_delta",
                                   "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                   "usage": {"input_tokens": int(usage.get("prompt_tokens") or 0),
                                             "output_tokens": int(usage.get("completion_tokens") or 0)}})
    yield encode_event("message_stop", {"type": "message_stop"})


def error_body(status, message):
    """Anthropic's error shape, which its SDK maps to typed exceptions."""
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


class _Blocks:
    """Opens, fills and closes Anthropic content blocks as text and tool-call deltas arrive."""

    def __init__(self):
        self.index = -1
        self.open_kind = None
        self.tool_blocks = {}          # OpenAI tool-call index -> block index

    def feed(self, delta):
        if delta.get("content"):
            if self.open_kind != "text":
                yield from self._start({"type": "text", "text": ""}, "text")
            yield encode_event("content_block_delta", {"type": "content_block_delta", "index": self.index,
                                                 "delta": {"type": "text_delta", "text": delta["content"]}})
        for call in delta.get("tool_calls") or ():
            position = call.get("index", 0)
            if position not in self.tool_blocks:
                function = call.get("function") or {}
                yield from self._start({"type": "tool_use", "id": call.get("id") or f"toolu_{position}",
                                        "name": function.get("name") or "", "input": {}}, "tool_use")
                self.tool_blocks[position] = self.index
            arguments = (call.get("function") or {}).get("arguments")
            if arguments:
                yield encode_event("content_block_delta", {"type": "content_block_delta", "index": self.tool_blocks[position],
                                                     "delta": {"type": "input_json_delta", "partial_json": arguments}})

    def close(self):
        if self.open_kind is not None:
            yield encode_event("content_block_stop", {"type": "content_block_stop", "index": self.index})
            self.open_kind = None

    def _start(self, block, kind):
        yield from self.close()
        self.index += 1
        self.open_kind = kind
        yield encode_event("content_block_start", {"type": "content_block_start", "index": self.index,
                                             "content_block": block})


def _from_message(message, where):
    """One Anthropic message as one or more OpenAI messages (tool results become `tool` messages)."""
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise BadRequest(f"'{where}.role' must be 'user' or 'assistant'.", f"{where}.role")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": message["role"], "content": content}]
    if not isinstance(content, list):
        raise BadRequest(f"'{where}.content' must be a string or an array of content blocks.", f"{where}.content")
    parts, tool_calls, results = [], [], []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image" and isinstance(block.get("source"), dict):
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block["source"], f"{where}.content[{j}]")}})
        elif kind == "tool_use" and message["role"] == "assistant":
            tool_calls.append({"id": block.get("id"), "type": "function", "function": {
                "name": block.get("name"), "arguments": json.dumps(block.get("input") or {})}})
        elif kind == "tool_result" and message["role"] == "user":
            results.append({"role": "tool", "tool_call_id": block.get("tool_use_id"),
                            "content": _result_text(block.get("content"))})
        else:
            raise BadRequest(f"'{where}.content[{j}]' is not a supported content block.", f"{where}.content")
    converted = list(results)
    if parts or tool_calls:
        out = {"role": message["role"], "content": parts or None}
        if tool_calls:
            out["tool_calls"] = tool_calls
        converted.append(out)
    return converted


def _image_url(source, where):
    if source.get("type") == "base64" and source.get("media_type") and source.get("data"):
        return f"data:{source['media_type']};base64,{source['data']}"
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return source["url"]
    raise BadRequest(f"'{where}.source' must be a base64 or url image source.", where)


def _system_text(system):
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n\n".join(b.get("text", "") for b in system if isinstance(b, dict) and b.get("type") == "text")
    raise BadRequest("'system' must be a string or an array of text blocks.", "system")


def _result_text(content):
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return content if isinstance(content, str) else ""


def _tool(tool):
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        raise BadRequest("Every tool needs a 'name'.", "tools")
    return {"type": "function", "function": {"name": tool["name"], "description": tool.get("description", ""),
                                             "parameters": tool.get("input_schema") or {"type": "object"}}}


def _tool_choice(choice):
    kind = (choice or {}).get("type") if isinstance(choice, dict) else None
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return {"auto": "auto", "any": "required", "none": "none"}.get(kind)


def _tool_use(call):
    function = call.get("function") or {}
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except ValueError:
        arguments = {"raw": function.get("arguments")}
    return {"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments}
