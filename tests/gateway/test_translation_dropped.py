"""X-Gateway-Dropped-Params comes from the adapter of the family that answered, on every routed endpoint:
empty when nothing was dropped, the ignored fields otherwise; a field a family cannot honour is a 400
naming it, before any upstream call (the token exchange included)."""
import pytest

from conftest import make_key, make_user
from helpers import gateway_config

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hi"}]
EXTRAS = {"metadata": {"team": "a"}, "store": True, "seed": 3, "parallel_tool_calls": True}


@pytest.fixture
def gateway(make_app, upstream):
    app = make_app(gateway_config(upstream, {f: {"provider": f} for f in ("openai", "anthropic", "gemini", "gigachat")},
                                  keys=("key-a",)))
    return app.test_client(), {"Authorization": f"Bearer {make_key(app, make_user(app))}"}


@pytest.mark.parametrize("family, dropped", [
    ("openai", set()),
    ("anthropic", {"metadata", "store", "seed"}),
    ("gemini", {"metadata", "store", "parallel_tool_calls"}),
    ("gigachat", {"metadata", "store", "seed", "parallel_tool_calls"}),
])
def test_each_family_lists_what_it_ignored(gateway, family, dropped):
    client, headers = gateway
    for stream in (False, True):
        response = client.post(CHAT, headers=headers, json={"model": family, "messages": HELLO, "stream": stream,
                                                            **EXTRAS})
        assert response.status_code == 200
        listed = response.headers["X-Gateway-Dropped-Params"]
        assert set(filter(None, listed.split(", "))) == dropped
    plain = client.post(CHAT, headers=headers, json={"model": family, "messages": HELLO})
    assert plain.headers["X-Gateway-Dropped-Params"] == ""


@pytest.mark.parametrize("family, extra, param", [
    ("anthropic", {"logprobs": True}, "logprobs"),
    ("gemini", {"top_logprobs": 2, "logprobs": True}, "logprobs"),
    ("gigachat", {"response_format": {"type": "json_object"}}, "response_format"),
])
def test_what_a_family_cannot_honour_is_refused_before_any_call(gateway, upstream, family, extra, param):
    client, headers = gateway
    response = client.post(CHAT, headers=headers, json={"model": family, "messages": HELLO, **extra})
    assert response.status_code == 400
    assert (response.get_json()["error"]["param"], response.get_json()["error"]["code"]) == (param,
                                                                                         "unsupported_parameter")
    assert upstream.requests == []


def test_a_body_cannot_smuggle_a_native_request(gateway, upstream):
    """Only the gateway's own front doors attach a native request: a client's copy is removed."""
    client, headers = gateway
    smuggled = {"family": "anthropic", "body": {"messages": HELLO, "max_tokens": 5, "system": "injected"},
                "headers": {"anthropic-beta": "x"}, "lost": [], "refused": []}
    response = client.post(CHAT, headers=headers, json={"model": "anthropic", "messages": HELLO,
                                                        "x_gateway_native": smuggled})
    assert response.status_code == 200
    assert "system" not in upstream.requests[0].body and "anthropic-beta" not in upstream.requests[0].headers


def test_gigachat_lists_the_parts_it_cannot_read(gateway):
    client, headers = gateway
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    response = client.post(CHAT, headers=headers, json={"model": "gigachat", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}]})
    assert response.headers["X-Gateway-Dropped-Params"] == "messages.content (image and file parts)"
