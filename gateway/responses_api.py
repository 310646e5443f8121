"""The OpenAI Responses API as a front door: requests become OpenAI chat bodies for the one routing
pipeline (so every provider family serves them), and chat answers and chunks become `response`
objects and the Responses API's typed stream events. Where an OpenAI-compatible upstream serves
`/responses` itself (`responses = "native"`), the request travels whole beside the chat form
(gateway.native) and that upstream's own object and events are relayed, ids rewritten."""
import time
import uuid

from gateway import validation
from gateway.errors import BadRequest
from gateway.native import NATIVE
from gateway.sse import encode_event

ROLES = ("user", "assistant", "system", "developer")
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
_COPIED = ("temperature", "top_p", "user", "models", "parallel_tool_calls", "metadata", "stream")
_REFUSED = ("background", "conversation", "prompt")     # server-side state and prompts the gateway does not keep
_GATEWAY_ONLY = ("models", "previous_response_id")      # never sent upstream: the upstream knows neither
TERMINAL = ("response.completed", "response.incomplete", "response.failed")     # a stream's last event


def _new_id(prefix):
    return f"{prefix}_{uuid.uuid4().hex}"


def input_items(body):
    """The request's `input` as stored items, with ids and statuses as `input_items` lists them.

    :raise BadRequest: naming the first bad item, or a state field (`store`, …) of the wrong type.
    """
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    for name, kind in (("previous_response_id", str), ("store", bool), ("stream", bool)):
        if body.get(name) is not None and not isinstance(body[name], kind):
            raise BadRequest(f"'{name}' must be a {'string' if kind is str else 'boolean'}.", name)
    value = body.get("input")
    if isinstance(value, str) and value:
        value = [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise BadRequest("'input' must be a non-empty string or array of input items.", "input")
    return [item for i, raw in enumerate(value) if (item := _item(raw, f"input[{i}]")) is not None]


def chat_request(body, history, items, native=False):
    """A chat body for the router: instructions, then the stored conversation, then this input.

    With `native` (a candidate serves /responses itself) the request also travels whole under
    NATIVE, and what only such an upstream runs (built-in tools, a tool_choice naming one) is left
    out of the chat form and listed as `refused`: a candidate that translates answers 400 naming it.

    :raise BadRequest: naming the first bad field.
    """
    _check_echoed(body)
    refused = []
    messages = [{"role": "system", "content": body["instructions"]}] if body.get("instructions") else []
    messages += messages_from_items(history + items)
    chat = {"model": body.get("model"), "messages": messages}
    chat.update({name: body[name] for name in _COPIED if body.get(name) is not None})
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    if (body.get("reasoning") or {}).get("effort"):
        chat["reasoning_effort"] = body["reasoning"]["effort"]
    if body.get("tools"):
        for i, tool in enumerate(_list(body, "tools")):
            if native and _built_in(tool):
                refused.append(f"tools[{i}].type")
            else:
                chat.setdefault("tools", []).append(_tool(tool, f"tools[{i}]"))
    if native and _built_in(body.get("tool_choice")):
        refused.append("tool_choice")
    elif body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    response_format = _response_format(body.get("text"))
    if response_format:
        chat["response_format"] = response_format
    try:
        chat = validation.chat_request(chat)
    except BadRequest as exc:       # the chat names (max_tokens, messages[…]) are not this API's
        param = "input" if (exc.param or "").startswith("messages") else exc.param
        raise BadRequest(exc.message.replace("'max_tokens'", "'max_output_tokens'"),
                         "max_output_tokens" if param == "max_tokens" else param) from None
    if native:
        chat[NATIVE] = {"family": "openai", "body": native_body(body, history), "headers": {}, "lost": [],
                        "refused": refused}
    return chat


def native_body(body, history):
    """The caller's request for an upstream's own /responses: the stored conversation expanded into
    `input` instead of `previous_response_id` (which the upstream does not know), `store: false` (the
    gateway stores the answer). Items go as stored, ids included (output items need them); a
    reasoning item only with its encrypted content, since an upstream that stored nothing cannot look it up."""
    current = body["input"] if isinstance(body["input"], list) else [{"role": "user", "content": body["input"]}]
    earlier = [item for item in history if item["type"] != "reasoning" or item.get("encrypted_content")]
    native = {name: value for name, value in body.items() if name not in _GATEWAY_ONLY}
    return {**native, "input": earlier + current, "store": False}


def messages_from_items(items):
    """Stored items as chat messages: function calls join the assistant turn they belong to."""
    messages = []
    for item in items:
        kind = item["type"]
        if kind == "message":
            content = [_part_to_chat(part) for part in item["content"]]
            if all(part["type"] == "text" for part in content):
                content = "".join(part["text"] for part in content)
            messages.append({"role": item["role"], "content": content})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            if messages and messages[-1]["role"] == "assistant":
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
    return messages


def draft(body, response_id, model_id):
    """The `response` object before any output: what `response.created` carries and the answer builds on."""
    tools = [_tool_out(tool) for tool in body.get("tools") or ()]
    response = {
        "id": response_id, "object": "response", "created_at": int(time.time()), "status": "in_progress",
        "completed_at": None, "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "model": model_id, "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
        "store": body.get("store", True), "temperature": body.get("temperature", 1.0),
        "text": {"format": (body.get("text") or {}).get("format") or {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"), "tools": tools, "top_p": body.get("top_p", 1.0),
        "truncation": "disabled", "metadata": body.get("metadata") or {}}
    if body.get("user") is not None:
        response["user"] = body["user"]
    return response


def response_from_completion(completion, response):
    """A chat.completion as the finished `response` (its `draft` filled in): a native upstream's own
    object, when it answered, with the gateway's id, model and state fields."""
    if completion.get("native"):
        return _as_ours(completion["native"], response)
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    output = []
    if message.get("content"):
        output.append(_message_item(_new_id("msg"), message["content"], "completed"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        output.append(_call_item(_new_id("fc"), call.get("id") or _new_id("call"), function.get("name") or "",
                                 function.get("arguments") or "", "completed"))
    return _finished(response, output, choice.get("finish_reason"), completion.get("usage"))


def usage_out(usage):
    """Chat usage in the Responses API's names, cached and reasoning tokens included."""
    usage = usage or {}
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": int(prompt_details.get("cached_tokens") or 0),
                                     "cache_write_tokens": int(prompt_details.get("cache_write_tokens") or 0)},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": int(completion_details.get("reasoning_tokens") or 0)},
            "total_tokens": prompt + completion}


def item_list(items, limit, order, after):
    """GET …/input_items: one page of a response's input items (newest first unless `order` is asc)."""
    items = list(items) if order == "asc" else list(reversed(items))
    if after:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    page = items[:limit]
    return {"object": "list", "data": page, "has_more": len(items) > limit,
            "first_id": page[0]["id"] if page else "", "last_id": page[-1]["id"] if page else ""}


class ResponseStream:
    """Turns the chunks of one committed chat stream into Responses events with `sequence_number`s.

    `opening()` first; `feed(chunk)` for each chunk; then `finish(usage)` (or `fail(message, usage)`
    when the stream broke), which closes what is open and sets `response`; `closing()` is the last event:
    `response.completed` (or `.incomplete`) only for a whole answer, `response.failed` otherwise.
    """

    def __init__(self, response):
        self.response = response
        self.sequence = 0
        self.items = {}              # output index -> item (message or function call), open until closed
        self.message_index = None    # output index of the open message item
        self.calls = {}              # chat tool-call index -> output index
        self.finish_reason = None

    def opening(self):
        yield self._event("response.created", response=self.response)
        yield self._event("response.in_progress", response=self.response)

    def feed(self, chunk):
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                yield from self._text(delta["content"])
            for call in delta.get("tool_calls") or ():
                yield from self._call(call)
            self.finish_reason = choice.get("finish_reason") or self.finish_reason

    def finish(self, usage):
        yield from self._close_all("completed")
        self.response = _finished(self.response, self._output(), self.finish_reason, usage)

    def fail(self, message, usage):
        yield from self._close_all("incomplete")
        self.response = {**self.response, "status": "failed", "output": self._output(),
                         "error": {"code": "server_error", "message": message}, "usage": usage_out(usage)}

    def closing(self):
        kind = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(
            self.response["status"], "response.failed")
        return self._event(kind, response=self.response)

    def _text(self, text):
        if self.message_index is None:
            index = len(self.items)
            self.message_index = index
            self.items[index] = item = _message_item(_new_id("msg"), "", "in_progress")
            yield self._event("response.output_item.added", output_index=index, item={**item, "content": []})
            yield self._event("response.content_part.added", item_id=item["id"], output_index=index,
                              content_index=0, part=_text_part(""))
        item = self.items[self.message_index]
        item["content"][0]["text"] += text
        yield self._event("response.output_text.delta", item_id=item["id"], output_index=self.message_index,
                          content_index=0, delta=text, logprobs=[])

    def _call(self, call):
        position = call.get("index", 0)
        function = call.get("function") or {}
        if position not in self.calls:
            yield from self._close_message("completed")
            index = len(self.items)
            self.calls[position] = index
            self.items[index] = item = _call_item(_new_id("fc"), call.get("id") or _new_id("call"),
                                                  function.get("name") or "", "", "in_progress")
            yield self._event("response.output_item.added", output_index=index, item=dict(item))
        index = self.calls[position]
        item = self.items[index]
        if function.get("arguments"):
            item["arguments"] += function["arguments"]
            yield self._event("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                              delta=function["arguments"])

    def _close_message(self, status):
        index, self.message_index = self.message_index, None
        if index is None:
            return
        item = self.items[index]
        part = item["content"][0]
        yield self._event("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                          text=part["text"], logprobs=[])
        yield self._event("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                          part=part)
        item["status"] = status
        yield self._event("response.output_item.done", output_index=index, item=item)

    def _close_all(self, status):
        yield from self._close_message(status)
        for index in sorted(self.calls.values()):
            item = self.items[index]
            yield self._event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                              name=item["name"], arguments=item["arguments"])
            item["status"] = status
            yield self._event("response.output_item.done", output_index=index, item=item)
        self.calls = {}

    def _output(self):
        return [self.items[index] for index in sorted(self.items)]

    def _event(self, kind, **fields):
        event = encode_event(kind, {"type": kind, "sequence_number": self.sequence, **fields})
        self.sequence += 1
        return event


class NativeResponseStream:
    """Relays a native upstream's own events (carried on its chunks as `native`) with the interface of
    ResponseStream: the `response` they carry gets the gateway's id, model and state fields, and
    `sequence_number`s are the gateway's, consecutive; the terminal event is held back for `closing()`
    (the response is stored first). A stream that breaks ends with `response.failed`, the items
    finished so far as its output."""

    def __init__(self, response):
        self.response = response
        self.sequence = 0
        self.done_items = {}         # output index -> item, from response.output_item.done
        self.terminal = None

    def opening(self):
        return ()

    def feed(self, chunk):
        event = dict(chunk["native"])
        if "response" in event:
            self.response = event["response"] = _as_ours(event["response"], self.response)
        if event.get("type") == "response.output_item.done":
            self.done_items[event.get("output_index")] = event.get("item")
        if event.get("type") in TERMINAL:
            self.terminal = event
        else:
            yield self._event(event)

    def finish(self, usage):
        return ()

    def fail(self, message, usage):
        self.terminal = {"type": "response.failed"}
        self.response = {**self.response, "status": "failed", "completed_at": None,
                         "output": [self.done_items[index] for index in sorted(self.done_items)],
                         "error": {"code": "server_error", "message": message}, "usage": usage_out(usage)}
        return ()

    def closing(self):
        return self._event({**self.terminal, "response": self.response})

    def _event(self, event):
        event["sequence_number"] = self.sequence
        self.sequence += 1
        return encode_event(event["type"], event)


def _as_ours(response, draft):
    """A native upstream's `response` as the gateway's: its id and model, and the caller's `store`,
    `previous_response_id` and `max_output_tokens` (the upstream saw none of them)."""
    return {**response, **{name: draft[name] for name in ("id", "model", "store", "previous_response_id",
                                                          "max_output_tokens")}}


def _finished(response, output, finish_reason, usage):
    reason = INCOMPLETE.get(finish_reason)
    return {**response, "status": "incomplete" if reason else "completed", "output": output,
            "completed_at": None if reason else int(time.time()),
            "incomplete_details": {"reason": reason} if reason else None, "usage": usage_out(usage)}


def _check_echoed(body):
    """The fields the `response` object repeats must have the types its schema gives them."""
    for name in _REFUSED:
        if body.get(name):
            raise BadRequest(f"'{name}' is not supported by this gateway.", name)
    for name, kind, label in (("instructions", str, "a string"), ("parallel_tool_calls", bool, "a boolean"),
                              ("reasoning", dict, "an object"), ("metadata", dict, "an object")):
        if body.get(name) is not None and not isinstance(body[name], kind):
            raise BadRequest(f"'{name}' must be {label}.", name)
    if not all(isinstance(v, str) for v in (body.get("metadata") or {}).values()):
        raise BadRequest("'metadata' values must be strings.", "metadata")


def _message_item(item_id, text, status):
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": [_text_part(text)]}


def _text_part(text):
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _call_item(item_id, call_id, name, arguments, status):
    return {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def _item(raw, where):
    """One input item, normalised for storage; None for the items that only OpenAI can replay (reasoning)."""
    if not isinstance(raw, dict):
        raise BadRequest(f"'{where}' must be an object.", where)
    kind = raw.get("type", "message")
    if kind == "message":
        role = raw.get("role")
        if role not in ROLES:
            raise BadRequest(f"'{where}.role' must be one of {', '.join(ROLES)}.", f"{where}.role")
        content = raw.get("content")
        if isinstance(content, str):
            content = [{"type": "output_text" if role == "assistant" else "input_text", "text": content}]
        if not isinstance(content, list) or not content:
            raise BadRequest(f"'{where}.content' must be a string or a non-empty array of parts.", f"{where}.content")
        parts = [_part(part, role, f"{where}.content[{j}]") for j, part in enumerate(content)]
        return {"id": raw.get("id") or _new_id("msg"), "type": "message", "role": role, "status": "completed",
                "content": parts}
    if kind == "function_call":
        for name in ("call_id", "name", "arguments"):
            if not isinstance(raw.get(name), str):
                raise BadRequest(f"'{where}.{name}' must be a string.", f"{where}.{name}")
        return _call_item(raw.get("id") or _new_id("fc"), raw["call_id"], raw["name"], raw["arguments"], "completed")
    if kind == "function_call_output":
        output = raw.get("output")
        if isinstance(output, list):
            output = "".join(p.get("text", "") for p in output if isinstance(p, dict))
        if not isinstance(raw.get("call_id"), str) or not isinstance(output, str):
            raise BadRequest(f"'{where}' needs a string 'call_id' and 'output'.", where)
        return {"id": raw.get("id") or _new_id("fco"), "type": "function_call_output", "call_id": raw["call_id"],
                "output": output, "status": "completed"}
    if kind == "reasoning":
        return None
    raise BadRequest(f"'{where}.type' {kind!r} is not supported: use messages, function_call and "
                     f"function_call_output items.", f"{where}.type")


def _part(part, role, where):
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
        if role == "assistant":
            return _text_part(part["text"])
        return {"type": "input_text", "text": part["text"]}
    if kind == "input_image" and role != "assistant" and isinstance(part.get("image_url"), str):
        return {"type": "input_image", "image_url": part["image_url"], "detail": part.get("detail") or "auto"}
    raise BadRequest(f"'{where}' must be an input_text, output_text or input_image part (with image_url).", where)


def _part_to_chat(part):
    if part["type"] == "input_image":
        return {"type": "image_url", "image_url": {"url": part["image_url"], "detail": part["detail"]}}
    return {"type": "text", "text": part["text"]}


def _list(body, name):
    if not isinstance(body[name], list):
        raise BadRequest(f"'{name}' must be an array.", name)
    return body[name]


def _tool(tool, where):
    if not isinstance(tool, dict) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise BadRequest(f"'{where}.type' {kind!r} is not supported: only function tools are.", f"{where}.type")
    if not isinstance(tool.get("name"), str) or not tool["name"]:
        raise BadRequest(f"'{where}.name' must be a non-empty string.", f"{where}.name")
    function = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
    if tool.get("description"):
        function["description"] = tool["description"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _built_in(tool):
    """A tool (or tool_choice) that only an upstream's own /responses runs: web search, file search, MCP…"""
    return isinstance(tool, dict) and isinstance(tool.get("type"), str) and tool["type"] != "function"


def _tool_out(tool):
    return {"type": "function", "name": tool.get("name"), "description": tool.get("description"),
            "parameters": tool.get("parameters"), "strict": tool.get("strict")}


def _tool_choice(choice):
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise BadRequest("'tool_choice' must be auto, none, required or a function.", "tool_choice")


def _response_format(text):
    """`text.format` as chat's `response_format` (None for plain text)."""
    if text is None:
        return None
    if not isinstance(text, dict):
        raise BadRequest("'text' must be an object.", "text")
    fmt = text.get("format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(fmt.get("schema"), dict) and isinstance(fmt.get("name"), str):
        schema = {key: fmt[key] for key in ("name", "schema", "strict", "description") if fmt.get(key) is not None}
        return {"type": "json_schema", "json_schema": schema}
    raise BadRequest("'text.format' must be text, json_object or json_schema (with a name and a schema).",
                     "text.format")

