"""The Anthropic Messages API as a front door: requests become OpenAI-shaped bodies for the one
routing pipeline (carrying the original for Anthropic upstreams, gateway.native), and OpenAI
answers and chunks become Anthropic messages and events (an Anthropic upstream's own relayed)."""
import json

from gateway import validation
from gateway.errors import BadRequest, StreamInterrupted
from gateway.native import NATIVE
from gateway.providers.convert import effort_for_budget
from gateway.sse import encode_event

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               504: "timeout_error", 529: "overloaded_error"}
_COPIED = {"temperature": "temperature", "top_p": "top_p", "stop_sequences": "stop", "stream": "stream"}
# Fields the OpenAI form expresses (natively or emulated); any other top-level field reaches Anthropic
# upstreams only, and is listed as dropped for the others.
_EXPRESSED = {"model", "messages", "system", "max_tokens", "metadata", "tools", "tool_choice", "thinking",
              "output_config", *_COPIED}
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")     # reach Anthropic upstreams, nothing else
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def request_from_anthropic(body, headers=None):
    """An Anthropic /v1/messages body as an OpenAI chat body (validated like /v1/chat/completions),
    carrying the request itself for Anthropic upstreams (gateway.native): they get it whole, with
    the caller's `anthropic-version` / `anthropic-beta` headers; other families get the OpenAI form,
    and what it cannot carry is listed as dropped (`lost`) or refused.

    :raise BadRequest: naming the first bad field.
    """
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    if not isinstance(body.get("max_tokens"), int) or isinstance(body.get("max_tokens"), bool):
        raise BadRequest("'max_tokens' is required and must be an integer.", "max_tokens")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise BadRequest("'messages' must be a non-empty array.", "messages")
    notes = _Notes()
    system = _system_blocks(body.get("system"), "system", notes)
    messages = [{"role": "system", "content": _text(system)}] if system else []
    turns = []
    for i, message in enumerate(body["messages"]):
        where = f"messages[{i}]"
        if isinstance(message, dict) and message.get("role") == "system":      # Claude Code sends these
            blocks = _system_blocks(message.get("content"), f"{where}.content", notes)
            system += blocks
            messages.append({"role": "system", "content": _text(blocks)})
            continue
        messages += _from_message(message, where, notes)
        turns.append(message)
    chat = {"model": body.get("model"), "messages": messages, "max_tokens": body["max_tokens"]}
    chat.update({ours: body[theirs] for theirs, ours in _COPIED.items() if body.get(theirs) is not None})
    if isinstance((body.get("metadata") or {}).get("user_id"), str):
        chat["user"] = body["metadata"]["user_id"]
    if body.get("tools"):
        tools = [_tool(t, f"tools[{i}]", notes) for i, t in enumerate(body["tools"])]
        chat["tools"] = [t for t in tools if t]
        _copy_tool_choice(body.get("tool_choice"), chat)
    _reasoning_and_format(body, chat, notes)
    notes.lost += sorted(set(body) - _EXPRESSED)          # top_k, context_management, service_tier …
    headers = {name: value for name, value in (headers or {}).items() if name in FORWARDED_HEADERS}
    if "anthropic-beta" in headers:
        notes.lost.append("anthropic-beta")
    chat = validation.chat_request(chat)
    native = {**body, "messages": turns}
    if system:
        native["system"] = system
    chat[NATIVE] = {"family": "anthropic", "body": native, "headers": headers,
                    "lost": list(dict.fromkeys(notes.lost)), "refused": notes.refused}
    return chat


class _Notes:
    """What the OpenAI form of a request could not carry: `lost` (dropped) or `refused` (cannot work)."""

    def __init__(self):
        self.lost, self.refused = [], []

    def block(self, block):
        if "cache_control" in block:
            self.lost.append("cache_control")


def _reasoning_and_format(body, chat, notes):
    """`thinking` and `output_config.effort` as reasoning_effort; `output_config.format` as response_format."""
    thinking, config = body.get("thinking"), body.get("output_config")
    if thinking is not None and not isinstance(thinking, dict):
        raise BadRequest("'thinking' must be an object.", "thinking")
    if config is not None and not isinstance(config, dict):
        raise BadRequest("'output_config' must be an object.", "output_config")
    thinking, config = thinking or {}, config or {}
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
            raise BadRequest("'thinking.budget_tokens' must be a positive integer.", "thinking.budget_tokens")
        chat["reasoning_effort"] = effort_for_budget(budget)
    elif thinking.get("type") == "adaptive":
        chat["reasoning_effort"] = "medium"
    if config.get("effort") is not None:
        if config["effort"] not in _EFFORTS:
            raise BadRequest(f"'output_config.effort' must be one of {', '.join(_EFFORTS)}.", "output_config.effort")
        chat["reasoning_effort"] = _EFFORTS[config["effort"]]
    output_format = config.get("format")
    if output_format is not None:
        if not isinstance(output_format, dict) or output_format.get("type") != "json_schema" or not isinstance(
                output_format.get("schema"), dict):
            raise BadRequest("'output_config.format' must be a json_schema format with a 'schema' object.",
                             "output_config.format")
        chat["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "output", "schema": output_format["schema"], "strict": True}}


def message_from_completion(completion, model_id, message_id, cost=None):
    """An OpenAI chat.completion as an Anthropic `message`: an Anthropic upstream's own, when it answered."""
    if completion.get("native"):
        return {**completion["native"], "id": message_id, "model": model_id,
                "usage": {**completion["native"].get("usage", {}), "cost": cost}}
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content = [{"type": "text", "text": message["content"]}] if message.get("content") else []
    for call in message.get("tool_calls") or ():
        content.append(_tool_use(call))
    return {"id": message_id, "type": "message", "role": "assistant", "model": model_id, "content": content,
            "stop_reason": STOP_REASONS.get(choice.get("finish_reason"), "end_turn"), "stop_sequence": None,
            "usage": {**usage_from_openai(completion.get("usage")), "cost": cost}}


def usage_from_openai(usage):
    """OpenAI usage as Anthropic's: cache reads and writes are not part of `input_tokens` there."""
    usage = usage or {}
    details = usage.get("prompt_tokens_details") or {}
    read, written = int(details.get("cached_tokens") or 0), int(details.get("cache_write_tokens") or 0)
    return {"input_tokens": max(0, int(usage.get("prompt_tokens") or 0) - read - written),
            "output_tokens": int(usage.get("completion_tokens") or 0),
            "cache_read_input_tokens": read, "cache_creation_input_tokens": written}


def stream_from_chunks(chunks, model_id, message_id, quote=None):
    """OpenAI chunks as Anthropic SSE events (bytes), from message_start to message_stop; chunks that
    carry an Anthropic upstream's own event (`native`) are relayed as that event, ids rewritten.
    `quote(usage)` gives the credits the final usage costs (`usage.cost`).

    A StreamInterrupted raised by `chunks` ends the stream with an `error` event and no
    message_stop, so the client knows the answer is incomplete.
    """
    relayed = False
    blocks = _Blocks()
    stop_reason, usage = "end_turn", {}
    try:
        for chunk in chunks:
            if chunk.get("usage"):
                usage = chunk["usage"]
            if "native" in chunk:
                relayed = True
                yield _native_event(chunk, model_id, message_id, quote)
                continue
            if not relayed and not blocks.started:
                blocks.started = True
                yield _message_start(model_id, message_id)
            for choice in chunk.get("choices") or ():
                yield from blocks.feed(choice.get("delta") or {})
                if choice.get("finish_reason"):
                    stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
    except StreamInterrupted as exc:
        yield encode_event("error", error_body(502, exc.message))
        return
    if relayed:
        return
    if not blocks.started:
        yield _message_start(model_id, message_id)
    yield from blocks.close()
    yield encode_event("message_delta", {"type": "message_delta",
                                   "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                   "usage": {**usage_from_openai(usage),
                                             "cost": quote(usage) if quote and usage else None}})
    yield encode_event("message_stop", {"type": "message_stop"})


def _message_start(model_id, message_id):
    return encode_event("message_start", {"type": "message_start", "message": {
        "id": message_id, "type": "message", "role": "assistant", "model": model_id, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}})


def _native_event(chunk, model_id, message_id, quote):
    """An Anthropic upstream's event as ours: its message id and model replaced, its usage priced."""
    event = chunk["native"]
    if event.get("type") == "message_start":
        event = {**event, "message": {**event.get("message", {}), "id": message_id, "model": model_id}}
    elif event.get("type") == "message_delta" and quote and chunk.get("usage"):
        event = {**event, "usage": {**event.get("usage", {}), "cost": quote(chunk["usage"])}}
    return encode_event(event["type"], event)


def error_body(status, message):
    """Anthropic's error shape, which its SDK maps to typed exceptions."""
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


class _Blocks:
    """Opens, fills and closes Anthropic content blocks as text and tool-call deltas arrive."""

    def __init__(self):
        self.started = False           # message_start was sent
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


def _from_message(message, where, notes):
    """One Anthropic message as one or more OpenAI messages (tool results become `tool` messages)."""
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise BadRequest(f"'{where}.role' must be 'user', 'assistant' or 'system'.", f"{where}.role")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": message["role"], "content": content}]
    if not isinstance(content, list):
        raise BadRequest(f"'{where}.content' must be a string or an array of content blocks.", f"{where}.content")
    parts, tool_calls, results = [], [], []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        at = f"{where}.content[{j}]"
        if kind is not None:
            notes.block(block)
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image" and isinstance(block.get("source"), dict):
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block["source"], at)}})
        elif kind == "document" and isinstance(block.get("source"), dict):
            parts += _document(block, at, notes)
        elif kind in ("thinking", "redacted_thinking") and message["role"] == "assistant":
            notes.lost.append("thinking_blocks")        # their signatures only mean something to Anthropic
        elif kind == "tool_use" and message["role"] == "assistant":
            tool_calls.append({"id": block.get("id"), "type": "function", "function": {
                "name": block.get("name"), "arguments": json.dumps(block.get("input") or {})}})
        elif kind == "tool_result" and message["role"] == "user":
            text = _result_text(block.get("content"), notes)
            results.append({"role": "tool", "tool_call_id": block.get("tool_use_id"),
                            "content": f"Error: {text}" if block.get("is_error") is True else text})
        elif isinstance(kind, str) and kind.endswith(("tool_use", "tool_result")) or kind == "search_result":
            notes.refused.append(at)                    # server tools and their results: Anthropic's own
        else:
            raise BadRequest(f"'{at}' is not a supported content block.", f"{where}.content")
    converted = list(results)
    if parts or tool_calls:
        out = {"role": message["role"], "content": parts or None}
        if tool_calls:
            out["tool_calls"] = tool_calls
        converted.append(out)
    return converted


def _document(block, where, notes):
    """A `document` block as [a `file` part] (PDF, base64) or [a text part] (plain text or content blocks)."""
    source = block["source"]
    if source.get("type") == "base64" and isinstance(source.get("data"), str) and source.get("media_type"):
        return [{"type": "file", "file": {"filename": block.get("title") or "document.pdf",
                                          "file_data": f"data:{source['media_type']};base64,{source['data']}"}}]
    if source.get("type") == "text" and isinstance(source.get("data"), str):
        return [{"type": "text", "text": source["data"]}]
    if source.get("type") == "content" and isinstance(source.get("content"), (str, list)):
        return [{"type": "text", "text": _result_text(source["content"], notes)}]
    if source.get("type") in ("url", "file"):
        notes.refused.append(f"{where}.source")     # only Anthropic fetches a document by URL or file id
        return []
    raise BadRequest(f"'{where}.source' must be a base64, text, content, url or file document source.",
                     f"{where}.source")


def _image_url(source, where):
    if source.get("type") == "base64" and source.get("media_type") and source.get("data"):
        return f"data:{source['media_type']};base64,{source['data']}"
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return source["url"]
    raise BadRequest(f"'{where}.source' must be a base64 or url image source.", where)


def _system_blocks(system, where, notes):
    """A system prompt (a string or text blocks) as text blocks, cache hints kept."""
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [{"type": "text", "text": system}]
    if isinstance(system, list) and all(isinstance(b, dict) and b.get("type") == "text"
                                        and isinstance(b.get("text"), str) for b in system):
        for block in system:
            notes.block(block)
        return list(system)
    raise BadRequest(f"'{where}' must be a string or an array of text blocks.", where)


def _text(blocks):
    return "\n\n".join(b["text"] for b in blocks)


def _result_text(content, notes):
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict):
                notes.block(block)
            if isinstance(block, dict) and block.get("type") == "image":
                notes.lost.append("tool_result.image")
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return content if isinstance(content, str) else ""


def _tool(tool, where, notes):
    """A custom tool as an OpenAI function; Anthropic's own server tools only work there."""
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        raise BadRequest("Every tool needs a 'name'.", "tools")
    notes.block(tool)
    if tool.get("type") not in (None, "custom"):
        notes.refused.append(where)
        return None
    return {"type": "function", "function": {"name": tool["name"], "description": tool.get("description", ""),
                                             "parameters": tool.get("input_schema") or {"type": "object"}}}


def _copy_tool_choice(choice, chat):
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif kind in ("auto", "any", "none"):
        chat["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    if kind and choice.get("disable_parallel_tool_use") is True:
        chat["parallel_tool_calls"] = False


def _tool_use(call):
    function = call.get("function") or {}
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except ValueError:
        arguments = {"raw": function.get("arguments")}
    return {"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments}


def count_request(body, headers=None):
    """A /v1/messages/count_tokens body (a Messages request without `max_tokens`) in the routed form."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return request_from_anthropic({**body, "max_tokens": 1}, headers)
