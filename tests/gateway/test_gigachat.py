"""GigaChat: the OAuth token exchange (cached, renewed, failed over) and translation, against the fake upstream."""
import uuid

import pytest

from conftest import make_key, make_user
from fake_upstream import Fault
from gateway import config as gateway_config_module
from gateway.config import ConfigError
from gateway.providers.gigachat import GigaChatAdapter
from helpers import gateway_config, sse_data, streamed_text

CHAT = "/v1/chat/completions"
HELLO = {"model": "giga", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]}


def gateway(make_app, upstream, keys=("auth-key-a",)):
    app = make_app(gateway_config(upstream, {"giga": {"provider": "gigachat", "upstream_name": "GigaChat-Pro"}},
                                  keys=keys, retry={"max_attempts": 1}))
    return app.test_client(), {"Authorization": f"Bearer {make_key(app, make_user(app))}"}


def oauth(upstream):
    return [r for r in upstream.requests if r.endpoint == "oauth"]


def chats(upstream):
    return [r for r in upstream.requests if r.endpoint == "chat"]


def test_token_exchange_then_bearer_chat(make_app, upstream):
    """The authorization key goes only to the OAuth endpoint; chat carries the bearer token; text and usage come back."""
    client, headers = gateway(make_app, upstream)
    body = client.post(CHAT, json=HELLO, headers=headers).get_json()
    assert body["choices"][0]["message"]["content"] == upstream.reply_text
    assert (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]) == upstream.usage
    [exchange] = oauth(upstream)
    assert exchange.key == "auth-key-a" and exchange.body == {"scope": "GIGACHAT_API_PERS"}
    assert uuid.UUID(exchange.headers["rquid"])
    [chat] = chats(upstream)
    assert chat.key == "tok-1" and "auth-key-a" not in str(chat.headers)
    assert chat.body["model"] == "GigaChat-Pro" and chat.body["messages"][0] == {"role": "system", "content": "Be brief."}
    events = sse_data(client.post(CHAT, json={**HELLO, "stream": True}, headers=headers).get_data())
    assert streamed_text(events) == upstream.reply_text and events[-1] == "[DONE]"


def test_token_is_cached_and_renewed_before_expiry(make_app, upstream):
    """A token about to expire (inside the one-minute margin) is renewed; a fresh one is reused."""
    client, headers = gateway(make_app, upstream)
    upstream.token_ttl_s = 30
    for _ in range(2):
        client.post(CHAT, json=HELLO, headers=headers)
    upstream.token_ttl_s = 1800
    for _ in range(2):
        client.post(CHAT, json=HELLO, headers=headers)
    assert len(oauth(upstream)) == 3
    assert [c.key for c in chats(upstream)] == ["tok-1", "tok-2", "tok-3", "tok-3"]


def test_rejected_authorization_key_fails_over_to_the_next(make_app, upstream):
    """The OAuth endpoint refusing key A is a key failure: key B serves the same request."""
    client, headers = gateway(make_app, upstream, keys=("auth-key-a", "auth-key-b"))
    upstream.script(Fault.status(401, "Can't decode 'Authorization' header"), key="auth-key-a")
    assert client.post(CHAT, json=HELLO, headers=headers).status_code == 200
    assert [r.key for r in oauth(upstream)] == ["auth-key-a", "auth-key-b"]
    assert len(chats(upstream)) == 1


def test_expired_token_is_dropped_and_exchanged_again(make_app, upstream):
    """A 401 from chat (token revoked early) costs one fresh exchange, not the key."""
    client, headers = gateway(make_app, upstream)
    client.post(CHAT, json=HELLO, headers=headers)
    upstream.script(Fault.status(401, "Token has expired"), key="tok-1")
    assert client.post(CHAT, json=HELLO, headers=headers).status_code == 200
    assert [c.key for c in chats(upstream)] == ["tok-1", "tok-1", "tok-2"]


def test_tools_become_functions_and_back(make_app, upstream):
    """OpenAI tools/tool calls/tool results travel as GigaChat functions; a function_call answer becomes tool_calls."""
    client, headers = gateway(make_app, upstream)
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    messages = [{"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Moscow\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "{\"t\": 3}"}]
    client.post(CHAT, json={"model": "giga", "messages": messages, "tools": tools, "tool_choice": "auto"},
                headers=headers)
    sent = chats(upstream)[0].body
    assert sent["functions"] == [tools[0]["function"]] and sent["function_call"] == "auto"
    assert sent["messages"][1]["function_call"] == {"name": "weather", "arguments": {"city": "Moscow"}}
    assert sent["messages"][2] == {"role": "function", "name": "weather", "content": "{\"t\": 3}"}
    answer = GigaChatAdapter().parse_chat({"choices": [{"index": 0, "finish_reason": "function_call", "message": {
        "role": "assistant", "content": "", "function_call": {"name": "weather", "arguments": {"city": "Omsk"}}}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3}}, None)
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "weather", "arguments": "{\"city\": \"Omsk\"}"}


def test_ca_bundle_must_exist():
    """TLS is verified against a CA file that must exist; there is no switch to turn verification off."""
    with pytest.raises(ConfigError, match="ca_bundle"):
        gateway_config_module.parse({"providers": {"giga": {"type": "gigachat", "ca_bundle": "/nope/ca.pem"}}}, {})
