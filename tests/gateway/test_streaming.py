"""Stream-safe failover: fall back before the first content chunk, end explicitly after it."""
import time

import requests

from conftest import make_key, make_user
from fake_upstream import Fault
from helpers import gateway_config, live_server, sse_data, streamed_text

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hi"}]


def setup(make_app, upstream, **kw):
    app = make_app(gateway_config(upstream, ["m1", "m2"], {"g": ["m1", "m2"]}, keys=("key-a",),
                                  retry={"max_attempts": 1}, **kw))
    return app, {"Authorization": f"Bearer {make_key(app, make_user(app))}"}


def stream(client, headers, **extra):
    response = client.post(CHAT, json={"model": "m1", "messages": HELLO, "stream": True, **extra}, headers=headers)
    return response, sse_data(response.get_data())


def test_normal_stream_relays_chunks_and_done(make_app, upstream):
    """A healthy stream arrives as chat.completion.chunk events with the catalog model, then one [DONE]."""
    app, headers = setup(make_app, upstream)
    response, events = stream(app.test_client(), headers)
    assert response.mimetype == "text/event-stream"
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    assert streamed_text(events) == upstream.reply_text
    assert {e["model"] for e in events[:-1]} == {"m1"}
    assert all(e["object"] == "chat.completion.chunk" for e in events[:-1])
    assert not any("usage" in e and e.get("choices") == [] for e in events[:-1])
    assert upstream.requests[0].body["stream_options"] == {"include_usage": True}


def test_include_usage_is_honoured(make_app, upstream):
    """With stream_options.include_usage the final usage chunk is relayed."""
    app, headers = setup(make_app, upstream)
    _, events = stream(app.test_client(), headers, stream_options={"include_usage": True})
    usage = [e for e in events[:-1] if e.get("choices") == []]
    assert usage[0]["usage"]["prompt_tokens"] == upstream.usage[0]


def test_failure_before_first_chunk_falls_back_cleanly(make_app, upstream):
    """A stream that fails before its first content chunk (500, reset, TTFT stall) falls back like non-stream."""
    app, headers = setup(make_app, upstream, routing={"ttft_timeout_s": 0.5})
    for fault in (Fault.status(500), Fault.reset(), Fault.ttft(5)):
        upstream.reset()
        upstream.script(fault, model="m1")
        response, events = stream(app.test_client(), headers)
        assert response.headers["X-Gateway-Model"] == "m2", fault
        assert streamed_text(events) == upstream.reply_text
        assert events[-1] == "[DONE]"
        assert [r.model for r in upstream.requests] == ["m1", "m2"]


def test_cut_after_first_chunk_ends_with_error_and_no_done(make_app, upstream):
    """A stream cut after content was sent ends with an error event, no [DONE], and no fallback call."""
    app, headers = setup(make_app, upstream)
    upstream.script(Fault.cut(after=2), model="m1")
    _, events = stream(app.test_client(), headers)
    assert "[DONE]" not in events
    assert events[-1]["error"]["code"] == "stream_interrupted"
    assert streamed_text(events[:-1])                        # the delivered text is kept
    assert [r.model for r in upstream.requests] == ["m1"]    # the fallback got zero requests


def test_malformed_chunk_ends_with_error(make_app, upstream):
    """A malformed chunk mid-stream ends the stream with an error event, never a crash."""
    app, headers = setup(make_app, upstream)
    upstream.script(Fault.malformed(after=2), model="m1")
    _, events = stream(app.test_client(), headers)
    assert "[DONE]" not in events and "error" in events[-1]


def test_stall_after_first_chunk_times_out_and_hangs_up(make_app, upstream):
    """A stalled stream ends within the idle timeout with an error event, and the upstream sees the hang-up."""
    app, headers = setup(make_app, upstream, routing={"ttft_timeout_s": 0.5, "stream_idle_timeout_s": 0.5})
    upstream.script(Fault.stall(after=2, seconds=10), model="m1")
    started = time.monotonic()
    _, events = stream(app.test_client(), headers)
    assert time.monotonic() - started < 3
    assert "[DONE]" not in events and "error" in events[-1]
    assert upstream.wait_for_hangup(0, timeout=3)


def test_keep_alive_comments_do_not_hold_the_first_token_deadline(make_app, upstream):
    """An upstream that sends only keep-alive comments is given up at the time-to-first-token
    deadline (each read succeeds, so no socket timeout fires) and the next model answers."""
    app, headers = setup(make_app, upstream, routing={"ttft_timeout_s": 0.5})
    upstream.script(Fault.keepalive(10), model="m1")
    started = time.monotonic()
    _, events = stream(app.test_client(), headers)
    assert time.monotonic() - started < 3
    assert events[-1] == "[DONE]" and events[0]["model"] == "m2"
    assert [r.model for r in upstream.requests] == ["m1", "m2"]
    assert upstream.wait_for_hangup(0, timeout=3)


def test_client_disconnect_closes_upstream(make_app, upstream):
    """A client that goes away mid-stream makes the gateway hang up on the upstream within seconds."""
    app, headers = setup(make_app, upstream)
    upstream.script(Fault.paced(0.3), model="m1")
    upstream.chunks = 40
    with live_server(app) as base:
        response = requests.post(base + CHAT, json={"model": "m1", "messages": HELLO, "stream": True},
                                 headers=headers, stream=True, timeout=10)
        lines = response.iter_lines()
        got = [next(lines) for _ in range(4)]
        assert any(line.startswith(b"data: ") for line in got)
        response.close()
        assert upstream.wait_for_hangup(0, timeout=4)


def test_always_stream_route(make_app, upstream):
    """POST /v1/chat/completions/stream streams even without `stream: true`."""
    app, headers = setup(make_app, upstream)
    response = app.test_client().post(CHAT + "/stream", json={"model": "m1", "messages": HELLO}, headers=headers)
    assert sse_data(response.get_data())[-1] == "[DONE]"


def test_a_stream_without_usage_counts_tool_call_output():
    """A stream that ends without the upstream's usage is billed from what it relayed: a tool call's
    name and arguments are output as much as text is (else a tool-call-only answer would be free)."""
    from gateway.router import StreamSession

    def delta(**fields):
        return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}

    chunks = [delta(role="assistant", content=""),
              delta(tool_calls=[{"index": 0, "id": "call_1", "function": {"name": "lookup_weather", "arguments": ""}}]),
              delta(tool_calls=[{"index": 0, "function": {"arguments": '{"city": "Paris", "days": 3}'}}])]
    session = StreamSession(None, [], iter(chunks), lambda: None, include_usage=False, prompt_estimate=7)
    assert list(session) == chunks
    usage = session.produced_usage()
    assert usage["prompt_tokens"] == 7 and usage["estimated"] is True
    assert usage["completion_tokens"] >= len("lookup_weather") // 4 + len('{"city": "Paris", "days": 3}') // 4
