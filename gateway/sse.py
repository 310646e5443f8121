"""One SSE encoder and one spec-following decoder (WHATWG event-stream parsing)."""
from dataclasses import dataclass

from gateway import fastjson

DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched server-sent event."""
    event: str | None
    data: str


def encode_data(payload):
    """`data: <json>` framing used by the OpenAI-compatible stream."""
    return b"data: " + fastjson.dumps(payload) + b"\n\n"


def encode_event(event, data, event_id=None):
    """A named event; every line of `data` gets its own `data:` line, as the spec requires.
    An `event_id` is what the browser sends back as `Last-Event-ID` when it reconnects."""
    if not isinstance(data, str):
        data = fastjson.dumps(data).decode()
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    id_line = f"id: {event_id}\n" if event_id is not None else ""
    return f"event: {event}\n{id_line}{lines}\n".encode()


def iter_events(lines):
    """Decode an iterable of raw lines (bytes, no line ending) into SSEEvent objects.

    Comments (`:`) are ignored, multi-line `data` is joined with `\\n`, an event is dispatched
    on a blank line; a trailing event without its blank line is dropped, as the spec says.
    """
    event, data = None, []
    for raw in lines:
        line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        line = line.rstrip("\r")
        if not line:
            if data:
                yield SSEEvent(event, "\n".join(data))
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
