"""A real fake LLM upstream on 127.0.0.1 speaking the OpenAI (chat and Responses), Anthropic and Gemini wire formats,
with scriptable faults and a log of every request, so tests assert on what was actually tried.

Run alone with `python tests/fake_upstream.py PORT` to serve healthy answers forever.
"""
import email
import email.policy
import json
import socket
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or on the way to) a healthy answer."""
    kind: str
    status: int = 0
    message: str = ""
    retry_after: object = None
    after: int = 0
    seconds: float = 0.0
    location: str = ""
    raw: bytes = b""
    content_type: str = "application/json"
    headers: tuple = ()           # more (name, value) pairs for an `answer`

    @staticmethod
    def status_(code, message="fake upstream error", retry_after=None):
        return Fault("status", status=code, message=message, retry_after=retry_after)

    @staticmethod
    def reset():
        return Fault("reset")

    @staticmethod
    def slow(seconds):
        return Fault("slow", seconds=seconds)

    @staticmethod
    def cut(after):
        return Fault("cut", after=after)

    @staticmethod
    def stall(after, seconds=30):
        return Fault("stall", after=after, seconds=seconds)

    @staticmethod
    def malformed(after, line=b'data: {"choices": [\n\n'):
        """After `after` content events, one broken SSE event (`line`, raw), then the end."""
        return Fault("malformed", after=after, raw=line)

    @staticmethod
    def answer(raw, content_type="application/json", headers=None):
        """A 200 whose body is `raw`, as is (with more `headers`): for answers that are well-formed HTTP but
        not a sound chat answer, or that only a client that honours those headers reads as one."""
        return Fault("answer", raw=raw, content_type=content_type, headers=tuple((headers or {}).items()))

    @staticmethod
    def ttft(seconds):
        return Fault("ttft", seconds=seconds)

    @staticmethod
    def paced(seconds):
        return Fault("paced", seconds=seconds)

    @staticmethod
    def redirect(location, code=307):
        return Fault("redirect", status=code, location=location)

    @staticmethod
    def invalid_json():
        return Fault("invalid_json")

    @staticmethod
    def in_stream_error(after):
        return Fault("in_stream_error", after=after)

    @staticmethod
    def keepalive(seconds):
        """SSE comments (OpenRouter's `: PROCESSING`) every 0.1 s for `seconds` before the first event."""
        return Fault("keepalive", seconds=seconds)

    @staticmethod
    def trickle(seconds):
        """A healthy non-stream answer sent a byte at a time over `seconds`: no single read is slow."""
        return Fault("trickle", seconds=seconds)


Fault.status = Fault.status_     # `Fault.status(429, ...)` reads best at call sites


@dataclass
class RequestRecord:
    family: str
    method: str
    path: str
    model: str
    key: str
    headers: dict
    body: object
    stream: bool
    endpoint: str
    hung_up: bool = False
    received_at: float = field(default_factory=time.monotonic)


@dataclass
class _Rule:
    fault: Fault
    model: str | None
    key: str | None
    times: int | None


class FakeUpstream:
    """The server; `script()` adds faults, `requests` is the log."""

    def __init__(self):
        self.requests = []
        self.reply_text = "Hello from the fake upstream"
        self.usage = (12, 7)
        self.cache = (0, 0)              # (read, written) prompt-cache tokens to report; Anthropic: when asked to cache
        self.reasoning_tokens = 0        # of the completion tokens, reported as reasoning when > 0
        self.call_tools = True           # answer a user turn with a call of the first tool offered
        self.chunks = 5
        self.token_ttl_s = 1800          # GigaChat access tokens handed out by /api/v2/oauth
        self.tokens_issued = 0
        self.connections = 0        # accepted so far: a client that keeps its connections alive opens few
        self._rules = []
        self._lock = threading.Lock()
        self._server = None

    def start(self):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def script(self, fault, model=None, key=None, times=None):
        with self._lock:
            self._rules.insert(0, _Rule(fault, model, key, times))

    def reset(self):
        with self._lock:
            self._rules.clear()
            self.requests.clear()

    def wait_for_hangup(self, index, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) > index and self.requests[index].hung_up:
                return True
            time.sleep(0.05)
        return False

    def _fault_for(self, record):
        with self._lock:
            for rule in self._rules:
                if rule.model not in (None, record.model) or rule.key not in (None, record.key):
                    continue
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                return rule.fault
        return None


def _handler_for(upstream):
    class Handler(_Handler):
        pass
    Handler.upstream = upstream
    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = None

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        with self.upstream._lock:
            self.upstream.connections += 1

    def do_GET(self):
        if self.path.startswith("/v1/models"):
            self._json(200, {"object": "list", "data": [{"id": "fake", "object": "model", "created": 0,
                                                         "owned_by": "fake"}]})
        else:
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type") or ""
        try:
            body = _multipart(raw, content_type) if content_type.startswith("multipart/") else \
                json.loads(raw) if raw else None
        except ValueError:
            body = dict(urllib.parse.parse_qsl(raw.decode(errors="replace"))) if raw else None
        record = self._record(body)
        if record is None:
            return self._json(404, {"error": {"message": "no such route", "type": "invalid_request_error"}})
        self.upstream.requests.append(record)
        self.record = record
        fault = self.upstream._fault_for(record)
        family = _FAMILIES[record.family]
        if fault is None or fault.kind in ("ttft", "paced", "cut", "stall", "malformed", "in_stream_error", "keepalive"):
            if record.endpoint == "oauth":
                return self._json(200, family.token(self.upstream))
            if record.endpoint == "embeddings":
                return self._json(200, family.embeddings(self.upstream, record))
            if record.endpoint in _RELAYED:
                return self._send(200, *_RELAYED[record.endpoint](self.upstream, record))
            if record.endpoint == "count_tokens":
                return self._json(200, {"input_tokens": len(json.dumps(record.body)) // 4})
            if record.stream:
                return self._stream(family, fault)
            if fault is not None and fault.kind in ("cut", "stall", "malformed", "in_stream_error"):
                return self._reset()
            return self._json(200, family.complete(self.upstream, record))
        if fault.kind == "status":
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return self._json(fault.status, family.error(fault.status, fault.message), extra)
        if fault.kind == "reset":
            return self._reset()
        if fault.kind == "slow":
            if self._wait(fault.seconds):
                return self._json(200, family.complete(self.upstream, record))
            return None
        if fault.kind == "redirect":
            return self._send(fault.status, b"", "text/plain", {"Location": fault.location})
        if fault.kind == "invalid_json":
            return self._send(200, b"{this is not json", "application/json")
        if fault.kind == "answer":
            return self._send(200, fault.raw, fault.content_type, dict(fault.headers))
        if fault.kind == "trickle":
            return self._trickle(json.dumps(family.complete(self.upstream, record)).encode(), fault.seconds)
        raise ValueError(fault.kind)

    # --- request parsing -------------------------------------------------------------------
    def _record(self, body):
        parsed = urllib.parse.urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        body_dict = body if isinstance(body, dict) else {}
        if parsed.path in ("/v1/chat/completions", "/v1/embeddings"):
            key = headers.get("authorization", "")[7:] if headers.get("authorization", "").startswith("Bearer ") else ""
            endpoint = "chat" if parsed.path.endswith("completions") else "embeddings"
            return RequestRecord("openai", "POST", self.path, str(body_dict.get("model", "")), key, headers, body,
                                 body_dict.get("stream") is True, endpoint)
        if parsed.path[len("/v1/"):] in _RELAYED:
            auth = headers.get("authorization", "")
            return RequestRecord("openai", "POST", self.path, str(body_dict.get("model", "")),
                                 auth[7:] if auth.startswith("Bearer ") else "", headers, body, False,
                                 parsed.path[len("/v1/"):])
        if parsed.path == "/v1/responses":
            auth = headers.get("authorization", "")
            return RequestRecord("openai_responses", "POST", self.path, str(body_dict.get("model", "")),
                                 auth[7:] if auth.startswith("Bearer ") else "", headers, body,
                                 body_dict.get("stream") is True, "chat")
        if parsed.path in ("/v1/messages", "/v1/messages/count_tokens"):
            endpoint = "count_tokens" if parsed.path.endswith("count_tokens") else "chat"
            return RequestRecord("anthropic", "POST", self.path, str(body_dict.get("model", "")),
                                 headers.get("x-api-key", ""), headers, body, body_dict.get("stream") is True, endpoint)
        if parsed.path == "/api/v2/oauth":
            auth = headers.get("authorization", "")
            return RequestRecord("gigachat_oauth", "POST", self.path, "", auth[6:] if auth.startswith("Basic ") else "",
                                 headers, body, False, "oauth")
        if parsed.path.startswith("/v1beta/models/") and ":" in parsed.path:
            name, _, method = parsed.path[len("/v1beta/models/"):].rpartition(":")
            query = urllib.parse.parse_qs(parsed.query)
            key = headers.get("x-goog-api-key") or (query.get("key") or [""])[0]
            endpoint = "embeddings" if "mbed" in method else "chat"
            return RequestRecord("gemini", "POST", self.path, urllib.parse.unquote(name), key, headers, body,
                                 method == "streamGenerateContent", endpoint)
        return None

    # --- answers ---------------------------------------------------------------------------
    def _send(self, status, payload, content_type, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _json(self, status, payload, extra=None):
        self._send(status, json.dumps(payload).encode(), "application/json", extra)

    def _reset(self):
        """Close with RST: the client sees a connection reset, not a clean end."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _wait(self, seconds):
        """Sleep up to `seconds`, noticing a client hang-up; False if the client went away."""
        deadline = time.monotonic() + seconds
        self.connection.settimeout(0.05)
        try:
            while time.monotonic() < deadline:
                try:
                    if self.connection.recv(1, socket.MSG_PEEK) == b"":
                        self.record.hung_up = True
                        return False
                except (socket.timeout, BlockingIOError):
                    pass
                except OSError:
                    self.record.hung_up = True
                    return False
        finally:
            self.connection.settimeout(None)
        return True

    def _stream(self, family, fault):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        kind = fault.kind if fault else None
        if kind == "ttft" and not self._wait(fault.seconds):
            return
        if kind == "keepalive" and not self._keep_alive(fault.seconds):
            return
        events = family.stream_events(self.upstream, self.record)
        limit = fault.after if kind in ("cut", "stall", "malformed", "in_stream_error") else None
        try:
            for index, event in enumerate(events):
                if limit is not None and index >= limit + 1:      # +1: the role/start event
                    break
                if kind == "paced" and index > 0 and not self._wait(fault.seconds):    # between events, not after the last
                    return
                self._chunk(event)
            if kind == "cut":
                time.sleep(0.2)        # let the client read what was sent: an RST discards unread data
                return self._reset()
            if kind == "stall":
                self._wait(fault.seconds)
                return self._reset()
            if kind == "malformed":
                self._chunk(fault.raw)
            if kind == "in_stream_error":
                self._chunk(family.stream_error())
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.record.hung_up = True

    def _keep_alive(self, seconds):
        """Send SSE comments for `seconds`; False if the client hung up meanwhile."""
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                self._chunk(b": PROCESSING\n\n")
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            self.record.hung_up = True
            return False
        return True

    def _trickle(self, payload, seconds):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        pause = seconds / len(payload)
        try:
            for index in range(len(payload)):
                self.wfile.write(payload[index:index + 1])
                self.wfile.flush()
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            self.record.hung_up = True

    def _chunk(self, data):
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _sse(payload, event=None):
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(payload) + "\n\n").encode()


def _pieces(upstream, text=None):
    text, n = upstream.reply_text if text is None else text, max(1, upstream.chunks)
    size = -(-len(text) // n)
    return [text[i:i + size] for i in range(0, len(text), size)]


def _tool_name(record):
    tools = (record.body or {}).get("tools") or []
    messages = (record.body or {}).get("messages") or (record.body or {}).get("contents") or []
    if not tools or not messages or messages[-1].get("role") != "user":
        return None
    first = tools[0]
    return (first.get("function") or {}).get("name") or first.get("name") or \
        ((first.get("functionDeclarations") or [{}])[0]).get("name")


def _forced_tool(record):
    """(name, JSON schema) of the tool the request forces (tool_choice naming one), in any family's format."""
    body = record.body or {}
    choice = body.get("tool_choice") or {}
    gemini = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("allowedFunctionNames")
    name = (choice.get("function") or {}).get("name") if choice.get("type") == "function" else \
        choice.get("name") if choice.get("type") == "tool" else gemini[0] if gemini else None
    for tool in body.get("tools") or ():
        for spec in [tool.get("function") or tool, *(tool.get("functionDeclarations") or ())]:
            if name and spec.get("name") == name:
                return name, spec.get("parameters") or spec.get("input_schema") or spec.get("parametersJsonSchema") or {}
    return None


def _answer_schema(record):
    """The JSON schema the request wants its text answer to follow, in any family's format, or None."""
    body = record.body or {}
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return response_format["json_schema"].get("schema") or {}
    output_format = (body.get("output_config") or {}).get("format") or {}
    if output_format.get("type") == "json_schema":
        return output_format["schema"]
    return (body.get("generationConfig") or {}).get("responseJsonSchema")


def example_of(schema, root=None):
    """A value satisfying a JSON schema (the subset SDKs generate: $ref/$defs, anyOf, enums, objects,
    arrays, scalars), so structured answers are built from the request, never canned."""
    root = root or schema
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return example_of(target, root)
    for combined in ("anyOf", "oneOf", "allOf"):
        if schema.get(combined):
            return example_of(schema[combined][0], root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        return {name: example_of(sub, root) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [example_of(schema.get("items") or {}, root)]
    return {"string": "example", "integer": 3, "number": 1.5, "boolean": True, "null": None}.get(kind, "example")


def _reply(up, record):
    """The answer's text: JSON following the requested schema, else the scripted reply."""
    schema = _answer_schema(record)
    return up.reply_text if schema is None else json.dumps(example_of(schema))


def _tool_call(up, record):
    """(name, arguments) of the tool call to answer with, or None: a forced tool gets arguments from its schema."""
    forced = _forced_tool(record)
    if forced:
        return forced[0], example_of(forced[1])
    tool = _tool_name(record) if up.call_tools else None
    return (tool, {"x": 1}) if tool else None


class _OpenAI:
    """OpenAI chat.completions, embeddings and error formats."""

    @staticmethod
    def complete(up, record):
        tool = _tool_call(up, record)
        message = {"role": "assistant", "content": _reply(up, record)}
        if tool:
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": tool[0], "arguments": json.dumps(tool[1])}}]}
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": record.model,
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": "tool_calls" if tool else "stop"}],
                "usage": _OpenAI.usage(up)}

    @staticmethod
    def usage(up):
        prompt, completion = up.usage
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        if up.cache[0]:
            usage["prompt_tokens_details"] = {"cached_tokens": up.cache[0]}
        if up.reasoning_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": up.reasoning_tokens}
        return usage

    @staticmethod
    def stream_events(up, record):
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": record.model}

        def chunk(delta, finish=None):
            return _sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        yield chunk({"role": "assistant", "content": ""})
        tool = _tool_call(up, record)
        if tool:
            yield chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                         "function": {"name": tool[0], "arguments": ""}}]})
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": json.dumps(tool[1])}}]})
        else:
            for piece in _pieces(up, _reply(up, record)):
                yield chunk({"content": piece})
        yield chunk({}, "tool_calls" if tool else "stop")
        if ((record.body or {}).get("stream_options") or {}).get("include_usage"):
            yield _sse({**base, "choices": [], "usage": _OpenAI.usage(up)})
        yield b"data: [DONE]\n\n"

    @staticmethod
    def stream_error():
        return _sse({"error": {"message": "upstream overloaded", "type": "server_error", "param": None, "code": None}})

    @staticmethod
    def embeddings(up, record):
        inputs = record.body.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        return {"object": "list", "model": record.model, "usage": {"prompt_tokens": up.usage[0],
                                                                   "total_tokens": up.usage[0]},
                "data": [{"object": "embedding", "index": i, "embedding": [0.125] * 8} for i in range(len(inputs))]}

    @staticmethod
    def error(status, message):
        return {"error": {"message": message, "type": "server_error" if status >= 500 else "invalid_request_error",
                          "param": None, "code": None}}


class _OpenAIResponses:
    """OpenAI's own Responses API (/v1/responses): a reasoning item first when asked to reason (with
    encrypted content when `include` asks for it), a web search call when a `web_search` tool is
    offered, then a function call (as chat would answer) or the text; its stream as typed events."""

    @staticmethod
    def response(up, record, status, output):
        body = record.body or {}
        prompt, completion = up.usage
        response = {
            "id": "resp_upstream1", "object": "response", "created_at": int(time.time()), "status": status,
            "completed_at": int(time.time()) if status == "completed" else None, "error": None,
            "incomplete_details": None, "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"), "model": record.model, "output": output,
            "parallel_tool_calls": True, "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
            "store": body.get("store", True), "temperature": 1.0, "text": {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"), "top_p": 1.0, "truncation": "disabled", "metadata": {},
            "tools": [{"strict": True, **tool} if tool.get("type") == "function" else tool
                      for tool in body.get("tools") or ()]}
        if status != "in_progress":
            response["usage"] = {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion,
                                 "input_tokens_details": {"cached_tokens": up.cache[0], "cache_write_tokens": 0},
                                 "output_tokens_details": {"reasoning_tokens": up.reasoning_tokens}}
        return response

    @staticmethod
    def output(up, record):
        """The finished output items: [web search call], then a function call or a message."""
        body = record.body or {}
        items = []
        if (body.get("reasoning") or {}).get("effort"):
            items.append({"id": "rs_1", "type": "reasoning", "summary": []})
            if "reasoning.encrypted_content" in (body.get("include") or ()):
                items[-1]["encrypted_content"] = "fake-encrypted-reasoning"
        if any(tool.get("type") == "web_search" for tool in body.get("tools") or ()):
            items.append({"id": "ws_1", "type": "web_search_call", "status": "completed",
                          "action": {"type": "search", "query": "fake query"}})
        tools = [tool for tool in body.get("tools") or () if tool.get("type") == "function"]
        last = (body.get("input") or [{}])[-1] if isinstance(body.get("input"), list) else {"role": "user"}
        if tools and up.call_tools and last.get("role") == "user":
            items.append({"id": "fc_1", "type": "function_call", "status": "completed", "call_id": "call_1",
                          "name": tools[0]["name"], "arguments": json.dumps({"x": 1})})
        else:
            items.append({"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                          "content": [{"type": "output_text", "text": up.reply_text, "annotations": [], "logprobs": []}]})
        return items

    @staticmethod
    def complete(up, record):
        return _OpenAIResponses.response(up, record, "completed", _OpenAIResponses.output(up, record))

    @staticmethod
    def stream_events(up, record):
        events = []

        def event(kind, **fields):
            events.append({"type": kind, "sequence_number": len(events), **fields})
        output = _OpenAIResponses.output(up, record)
        event("response.created", response=_OpenAIResponses.response(up, record, "in_progress", []))
        event("response.in_progress", response=_OpenAIResponses.response(up, record, "in_progress", []))
        for index, item in enumerate(output):
            if item["type"] == "reasoning":
                event("response.output_item.added", output_index=index, item=item)
            elif item["type"] == "web_search_call":
                event("response.output_item.added", output_index=index, item={**item, "status": "in_progress"})
                event("response.web_search_call.completed", output_index=index, item_id=item["id"])
            elif item["type"] == "function_call":
                event("response.output_item.added", output_index=index,
                      item={**item, "status": "in_progress", "arguments": ""})
                event("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                      delta=item["arguments"])
                event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                      name=item["name"], arguments=item["arguments"])
            else:
                part = item["content"][0]
                event("response.output_item.added", output_index=index,
                      item={**item, "status": "in_progress", "content": []})
                event("response.content_part.added", item_id=item["id"], output_index=index, content_index=0,
                      part={**part, "text": ""})
                for piece in _pieces(up):
                    event("response.output_text.delta", item_id=item["id"], output_index=index, content_index=0,
                          delta=piece, logprobs=[])
                event("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                      text=part["text"], logprobs=[])
                event("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                      part=part)
            event("response.output_item.done", output_index=index, item=item)
        event("response.completed", response=_OpenAIResponses.response(up, record, "completed", output))
        return [_sse(data, data["type"]) for data in events]

    @staticmethod
    def stream_error():
        return _sse({"type": "error", "code": "server_error", "message": "upstream overloaded", "param": None,
                     "sequence_number": 0}, "error")

    error = staticmethod(_OpenAI.error)


class _Anthropic:
    """Anthropic Messages format: thinking (with a signature) when asked to think, prompt-cache usage
    when the request marks cache breakpoints, structured output from `output_config.format`."""

    SIGNATURE = "fake-signature-0123456789"

    @staticmethod
    def usage(up, record, output):
        usage = {"input_tokens": up.usage[0], "output_tokens": output}
        if "cache_control" in json.dumps(record.body):
            usage.update(cache_read_input_tokens=up.cache[0], cache_creation_input_tokens=up.cache[1])
        return usage

    @staticmethod
    def thinks(record):
        return ((record.body or {}).get("thinking") or {}).get("type") in ("enabled", "adaptive")

    @staticmethod
    def complete(up, record):
        tool = _tool_call(up, record)
        content = [{"type": "tool_use", "id": "toolu_1", "name": tool[0], "input": tool[1]}] if tool else \
            [{"type": "text", "text": _reply(up, record)}]
        if _Anthropic.thinks(record):
            content.insert(0, {"type": "thinking", "thinking": "Let me think.", "signature": _Anthropic.SIGNATURE})
        return {"id": "msg_fake", "type": "message", "role": "assistant", "model": record.model, "content": content,
                "stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None,
                "usage": _Anthropic.usage(up, record, up.usage[1])}

    @staticmethod
    def stream_events(up, record):
        tool = _tool_call(up, record)
        start = _Anthropic.usage(up, record, 1)
        yield _sse({"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": record.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start}}, "message_start")
        index = 0
        if _Anthropic.thinks(record):
            yield _sse({"type": "content_block_start", "index": 0,
                        "content_block": {"type": "thinking", "thinking": "", "signature": ""}}, "content_block_start")
            yield _sse({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "thinking_delta", "thinking": "Let me think."}}, "content_block_delta")
            yield _sse({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "signature_delta", "signature": _Anthropic.SIGNATURE}}, "content_block_delta")
            yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
            index = 1
        if tool:
            yield _sse({"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": "toolu_1", "name": tool[0], "input": {}}}, "content_block_start")
            yield _sse({"type": "content_block_delta", "index": index, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(tool[1])}}, "content_block_delta")
        else:
            yield _sse({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
                       "content_block_start")
            yield _sse({"type": "ping"}, "ping")
            for piece in _pieces(up, _reply(up, record)):
                yield _sse({"type": "content_block_delta", "index": index,
                            "delta": {"type": "text_delta", "text": piece}}, "content_block_delta")
        yield _sse({"type": "content_block_stop", "index": index}, "content_block_stop")
        yield _sse({"type": "message_delta", "delta": {"stop_reason": "tool_use" if tool else "end_turn",
                                                       "stop_sequence": None},
                    "usage": {"output_tokens": up.usage[1]}}, "message_delta")
        yield _sse({"type": "message_stop"}, "message_stop")

    @staticmethod
    def stream_error():
        return _sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error")

    @staticmethod
    def error(status, message):
        kinds = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "not_found_error", 429: "rate_limit_error", 529: "overloaded_error"}
        return {"type": "error", "error": {"type": kinds.get(status, "api_error"), "message": message}}


class _Gemini:
    """Gemini generateContent / streamGenerateContent (alt=sse) / batchEmbedContents format."""

    @staticmethod
    def _usage(up):
        prompt, completion = up.usage
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": completion, "totalTokenCount": prompt + completion}
        if up.cache[0]:
            usage["cachedContentTokenCount"] = up.cache[0]
        if up.reasoning_tokens:
            usage["thoughtsTokenCount"] = up.reasoning_tokens
        return usage

    @staticmethod
    def complete(up, record):
        tool = _tool_call(up, record)
        part = {"functionCall": {"name": tool[0], "args": tool[1]}} if tool else {"text": _reply(up, record)}
        return {"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": _Gemini._usage(up), "modelVersion": record.model}

    @staticmethod
    def stream_events(up, record):
        tool = _tool_call(up, record)
        if tool:
            yield _sse({"candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": tool[0], "args": tool[1]}}]}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": _Gemini._usage(up), "modelVersion": record.model})
            return
        pieces = _pieces(up, _reply(up, record))
        yield _sse({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "index": 0}]})
        for i, piece in enumerate(pieces):
            candidate = {"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}
            event = {"candidates": [candidate], "modelVersion": record.model}
            if i == len(pieces) - 1:
                candidate["finishReason"] = "STOP"
                event["usageMetadata"] = _Gemini._usage(up)
            yield _sse(event)

    @staticmethod
    def stream_error():
        return _sse({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}})

    @staticmethod
    def embeddings(up, record):
        count = len((record.body or {}).get("requests") or [None])
        return {"embeddings": [{"values": [0.25] * 8} for _ in range(count)]}

    @staticmethod
    def error(status, message):
        names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
        return {"error": {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}}


class _GigaChatOAuth:
    """GigaChat's token endpoint: Basic authorization key in, a bearer token with expiry (ms) out."""

    @staticmethod
    def token(up):
        up.tokens_issued += 1
        return {"access_token": f"tok-{up.tokens_issued}", "expires_at": int((time.time() + up.token_ttl_s) * 1000)}

    @staticmethod
    def error(status, message):
        return {"code": status, "message": message}


def _multipart(raw, content_type):
    """A multipart/form-data body as {name: text, or {"filename", "content_type", "data"} for a file}."""
    message = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw,
                                       policy=email.policy.HTTP)
    fields = {}
    for part in message.iter_parts():
        name, data = part.get_param("name", header="content-disposition"), part.get_payload(decode=True)
        fields[name] = {"filename": part.get_filename(), "content_type": part.get_content_type(), "data": data} \
            if part.get_filename() else data.decode()
    return fields


class _Relayed:
    """OpenAI's other endpoints (moderations, images, speech, transcriptions) and the vLLM/Jina rerank:
    each answers (body bytes, content type), with usage where the real one reports it."""

    @staticmethod
    def moderations(up, record):
        inputs = record.body.get("input")
        results = [{"flagged": False, "categories": {"violence": False}, "category_scores": {"violence": 0.01}}
                   for _ in (inputs if isinstance(inputs, list) and isinstance(inputs[0], str) else [inputs])]
        return json.dumps({"id": "modr-fake", "model": record.model, "results": results}).encode(), "application/json"

    @staticmethod
    def images(up, record):
        prompt, output = up.usage
        return json.dumps({"created": int(time.time()), "data": [{"b64_json": "aW1hZ2U="}] * (record.body.get("n") or 1),
                           "usage": {"input_tokens": prompt, "output_tokens": output,
                                     "total_tokens": prompt + output}}).encode(), "application/json"

    @staticmethod
    def speech(up, record):
        return b"ID3 fake mp3 of " + record.body["input"].encode(), "audio/mpeg"

    @staticmethod
    def transcriptions(up, record):
        if record.body.get("response_format") == "text":
            return up.reply_text.encode(), "text/plain; charset=utf-8"
        prompt, output = up.usage
        return json.dumps({"text": up.reply_text, "usage": {"type": "tokens", "input_tokens": prompt,
                                                            "output_tokens": output,
                                                            "total_tokens": prompt + output}}).encode(), "application/json"

    @staticmethod
    def rerank(up, record):
        results = [{"index": i, "relevance_score": round(1 / (i + 1), 3)} for i in range(len(record.body["documents"]))]
        return json.dumps({"id": "rerank-fake", "model": record.model, "results": results[:record.body.get("top_n")],
                           "usage": {"total_tokens": up.usage[0]}}).encode(), "application/json"


_RELAYED = {"moderations": _Relayed.moderations, "images/generations": _Relayed.images, "audio/speech": _Relayed.speech,
            "audio/transcriptions": _Relayed.transcriptions, "rerank": _Relayed.rerank}
_FAMILIES = {"openai": _OpenAI, "openai_responses": _OpenAIResponses, "anthropic": _Anthropic, "gemini": _Gemini, "gigachat_oauth": _GigaChatOAuth}


if __name__ == "__main__":
    import sys

    server = FakeUpstream()
    server._server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0),
                                         _handler_for(server))
    print(f"fake upstream on {server.url}", flush=True)
    server._server.serve_forever()
