"""POST /v1/messages: Anthropic's format in and out, its error shapes, and an honest broken stream."""
import json

import pytest

from conftest import make_key, make_user
from fake_upstream import Fault
from helpers import gateway_config

HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gateway(make_app, upstream):
    app = make_app(gateway_config(upstream, ["m1"], keys=("key-a",), retry={"max_attempts": 1}))
    return app.test_client(), {"x-api-key": make_key(app, make_user(app))}


def events_of(raw):
    """(event name, data) pairs of an Anthropic SSE body."""
    pairs = []
    for block in raw.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        pairs.append((lines["event"], json.loads(lines["data"])))
    return pairs


def test_messages_routes_to_openai_family_with_translation(gateway, upstream):
    """System, tool_result blocks and stop_sequences become the OpenAI request the upstream receives."""
    client, headers = gateway
    response = client.post("/v1/messages", headers=headers, json={
        "model": "m1", "max_tokens": 20, "system": [{"type": "text", "text": "Be brief."}], "stop_sequences": ["END"],
        "messages": [{"role": "user", "content": "hi"},
                     {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"}]}]})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["type"] == "message" and body["content"] == [{"type": "text", "text": upstream.reply_text}]
    assert body["usage"] == {"input_tokens": upstream.usage[0], "output_tokens": upstream.usage[1],
                             "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0, "cost": 0.0}
    sent = upstream.requests[0].body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["messages"][2]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert sent["messages"][3] == {"role": "tool", "tool_call_id": "t1", "content": "42"}
    assert (sent["stop"], sent["max_tokens"]) == (["END"], 20)


@pytest.mark.parametrize("body, status, kind", [
    ({"model": "m1", "messages": HELLO}, 400, "invalid_request_error"),
    ({"model": "m1", "max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]}, 400, "invalid_request_error"),
    ({"model": "nope", "max_tokens": 5, "messages": HELLO}, 404, "not_found_error"),
    ({"model": "m1", "max_tokens": 5, "messages": HELLO, "thinking": {"type": "enabled"}}, 400,
     "invalid_request_error"),
    ({"model": "m1", "max_tokens": 5, "messages": HELLO, "output_config": {"format": {"type": "xml"}}}, 400,
     "invalid_request_error"),
    ({"model": "m1", "max_tokens": 5, "messages": HELLO + [{"role": "system", "content": [{"type": "image"}]}]}, 400,
     "invalid_request_error"),
    ({"model": "m1", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "ftp"}}]}]}, 400, "invalid_request_error"),
])
def test_bad_requests_get_anthropic_errors(gateway, upstream, body, status, kind):
    """Refusals use Anthropic's error shape and never reach an upstream."""
    client, headers = gateway
    response = client.post("/v1/messages", headers=headers, json=body)
    assert response.status_code == status
    assert response.get_json()["type"] == "error" and response.get_json()["error"]["type"] == kind
    assert upstream.requests == []


def test_missing_key_is_authentication_error(gateway):
    client, _ = gateway
    response = client.post("/v1/messages", json={"model": "m1", "max_tokens": 5, "messages": HELLO})
    assert (response.status_code, response.get_json()["error"]["type"]) == (401, "authentication_error")


def test_stream_events_in_order_and_cut_ends_with_error(gateway, upstream):
    """A healthy stream runs message_start … message_stop; a cut one ends with `error` and no message_stop."""
    client, headers = gateway
    request = {"model": "m1", "max_tokens": 20, "messages": HELLO, "stream": True}
    names = [name for name, _ in events_of(client.post("/v1/messages", headers=headers, json=request).get_data())]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names[1] == "content_block_start" and "content_block_stop" in names
    upstream.script(Fault.cut(after=2), model="m1", times=1)
    pairs = events_of(client.post("/v1/messages", headers=headers, json=request).get_data())
    assert pairs[-1][0] == "error" and pairs[-1][1]["error"]["type"] == "api_error"
    assert "message_stop" not in [name for name, _ in pairs]
