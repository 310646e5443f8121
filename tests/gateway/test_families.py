"""Anthropic and Gemini translation, proven from what the fake upstream received and what the client got."""
import json

import pytest

from conftest import make_key, make_user
from fake_upstream import Fault
from helpers import gateway_config, sse_data, streamed_text

CHAT = "/v1/chat/completions"
IMAGE = "data:image/png;base64,iVBORw0KGgo="
TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "Look up",
                                           "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                 {"type": "image_url", "image_url": {"url": IMAGE}}]},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_9", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\": \"png\"}"}}]},
    {"role": "tool", "tool_call_id": "call_9", "content": "a picture"},
    {"role": "user", "content": "thanks"},
]


def gateway(make_app, upstream, family, keys=("key-a",), **kw):
    app = make_app(gateway_config(upstream, {"m1": {"provider": family, "upstream_name": "up-1"}}, keys=keys, **kw))
    return app.test_client(), {"Authorization": f"Bearer {make_key(app, make_user(app))}"}


def test_anthropic_request_translation(make_app, upstream):
    """System text, images, tool calls and tool results arrive in Anthropic's shape with its headers."""
    client, headers = gateway(make_app, upstream, "anthropic")
    response = client.post(CHAT, json={"model": "m1", "messages": CONVERSATION, "max_tokens": 50, "stop": "END",
                                       "tools": TOOLS, "tool_choice": "required"}, headers=headers)
    assert response.status_code == 200, response.get_json()
    record = upstream.requests[0]
    assert record.path == "/v1/messages"
    assert (record.key, record.headers["anthropic-version"]) == ("key-a", "2023-06-01")
    assert "authorization" not in record.headers
    body = record.body
    assert (body["model"], body["system"], body["max_tokens"], body["stop_sequences"]) == ("up-1", "Be brief.", 50, ["END"])
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"][1] == {"type": "image", "source": {"type": "base64",
                                                                            "media_type": "image/png", "data": "iVBORw0KGgo="}}
    assert body["messages"][1]["content"] == [{"type": "tool_use", "id": "call_9", "name": "lookup", "input": {"q": "png"}}]
    assert body["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "call_9", "content": "a picture"},
                                              {"type": "text", "text": "thanks"}]
    assert body["tools"][0]["input_schema"] == TOOLS[0]["function"]["parameters"]
    assert body["tool_choice"] == {"type": "any"}


def test_gemini_request_translation(make_app, upstream):
    """Gemini gets contents/parts, systemInstruction, generationConfig and the key in x-goog-api-key."""
    client, headers = gateway(make_app, upstream, "gemini")
    response = client.post(CHAT, json={"model": "m1", "messages": CONVERSATION, "max_tokens": 50, "temperature": 0.5,
                                       "tools": TOOLS}, headers=headers)
    assert response.status_code == 200, response.get_json()
    record = upstream.requests[0]
    assert record.path == "/v1beta/models/up-1:generateContent"
    assert record.headers["x-goog-api-key"] == "key-a" and "key=" not in record.path
    body = record.body
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    assert body["contents"][1]["parts"] == [{"functionCall": {"name": "lookup", "args": {"q": "png"}}}]
    assert body["contents"][2]["parts"][0] == {"functionResponse": {"name": "lookup",
                                                                    "response": {"content": "a picture"}}}
    assert body["generationConfig"] == {"temperature": 0.5, "maxOutputTokens": 50}
    assert body["tools"][0]["functionDeclarations"][0]["name"] == "lookup"


@pytest.mark.parametrize("family", ["anthropic", "gemini"])
def test_answers_translate_back_to_openai(make_app, upstream, family):
    """Text, usage and finish reason come back in OpenAI's shape, stream and non-stream; tool calls too."""
    client, headers = gateway(make_app, upstream, family)
    body = client.post(CHAT, json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]},
                       headers=headers).get_json()
    assert body["choices"][0]["message"]["content"] == upstream.reply_text
    assert body["choices"][0]["finish_reason"] == "stop"
    assert (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]) == upstream.usage
    events = sse_data(client.post(CHAT, json={"model": "m1", "messages": [{"role": "user", "content": "hi"}],
                                              "stream": True, "stream_options": {"include_usage": True}},
                                  headers=headers).get_data())
    assert streamed_text(events) == upstream.reply_text
    assert events[-1] == "[DONE]"
    assert events[-2]["usage"]["completion_tokens"] == upstream.usage[1]
    assert [e["choices"][0]["finish_reason"] for e in events[:-1] if e["choices"]][-1] == "stop"
    tool = client.post(CHAT, json={"model": "m1", "messages": [{"role": "user", "content": "hi"}], "tools": TOOLS},
                       headers=headers).get_json()["choices"][0]
    assert tool["finish_reason"] == "tool_calls"
    assert tool["message"]["tool_calls"][0]["function"]["name"] == "lookup"
    assert json.loads(tool["message"]["tool_calls"][0]["function"]["arguments"]) == {"x": 1}


@pytest.mark.parametrize("family", ["anthropic", "gemini"])
def test_family_errors_drive_key_failover(make_app, upstream, family):
    """Each family's 429 body and status cool the key down; the next key serves the same request."""
    client, headers = gateway(make_app, upstream, family, keys=("key-a", "key-b"))
    upstream.script(Fault.status(429, "slow down", retry_after=30), key="key-a")
    response = client.post(CHAT, json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]},
                           headers=headers)
    assert response.status_code == 200
    assert [r.key for r in upstream.requests] == ["key-a", "key-b"]


def test_gemini_bad_api_key_400_is_a_key_failure(make_app, upstream):
    """Gemini answers an invalid key with 400 INVALID_ARGUMENT: the gateway fails over instead of giving up."""
    client, headers = gateway(make_app, upstream, "gemini", keys=("key-a", "key-b"))
    upstream.script(Fault.status(400, "API key not valid. Please pass a valid API key."), key="key-a")
    response = client.post(CHAT, json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]},
                           headers=headers)
    assert response.status_code == 200
    assert [r.key for r in upstream.requests] == ["key-a", "key-b"]


@pytest.mark.parametrize("family, events_before_text", [("anthropic", 3), ("gemini", 1)])
def test_family_stream_error_after_first_chunk_ends_with_error(make_app, upstream, family, events_before_text):
    """An in-stream error event (Anthropic `error`, Gemini error object) ends the stream with an error, no [DONE]."""
    client, headers = gateway(make_app, upstream, family)
    upstream.script(Fault.in_stream_error(after=events_before_text + 1), model="up-1")
    events = sse_data(client.post(CHAT, json={"model": "m1", "messages": [{"role": "user", "content": "hi"}],
                                              "stream": True}, headers=headers).get_data())
    assert "[DONE]" not in events
    assert events[-1]["error"]["code"] == "stream_interrupted"
    assert streamed_text(events)


def test_model_name_cannot_change_the_upstream_path(make_app, upstream):
    """Names with path tricks never reach the upstream: unknown ids are 404, unsafe configured names are refused."""
    app = make_app(gateway_config(upstream, {"g1": {"provider": "gemini", "upstream_name": "../../v1/secrets"},
                                             "g2": {"provider": "gemini", "upstream_name": "gemini-pro"}}))
    headers = {"Authorization": f"Bearer {make_key(app, make_user(app))}"}
    client = app.test_client()
    for model in ("gemini/../../admin", "g2/../x", "gemini/gemini-pro:streamGenerateContent?key=x"):
        response = client.post(CHAT, json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                               headers=headers)
        assert response.status_code == 404
    response = client.post(CHAT, json={"model": "g1", "messages": [{"role": "user", "content": "hi"}]}, headers=headers)
    assert response.status_code == 400
    assert upstream.requests == []
    ok = client.post(CHAT, json={"model": "gemini/gemini-pro", "messages": [{"role": "user", "content": "hi"}]},
                     headers=headers)
    assert ok.status_code == 200
    assert [r.path for r in upstream.requests] == ["/v1beta/models/gemini-pro:generateContent"]
