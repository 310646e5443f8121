"""Bad requests and bad credentials are refused in OpenAI's shape before any upstream call."""
import pytest

from conftest import make_key, make_user
from models.user import utcnow

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hi"}]


def assert_openai_error(response, status, code=None):
    body = response.get_json()
    assert response.status_code == status, body
    assert set(body["error"]) == {"message", "type", "param", "code"}
    if code:
        assert body["error"]["code"] == code
    return body["error"]


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer"}, {"Authorization": "Bearer sk-short"}, {"Authorization": "Basic abc"},
    {"Authorization": "Bearer sk-" + "x" * 43}, {"x-api-key": "sk-" + "y" * 43},
])
def test_missing_malformed_or_unknown_keys_get_401(client, headers):
    """Missing, malformed or unknown keys get 401 and the key is never echoed."""
    response = client.post(CHAT, json={"model": "demo-chat", "messages": HELLO}, headers=headers)
    error = assert_openai_error(response, 401)
    assert "x" * 10 not in error["message"] and "y" * 10 not in error["message"]


def test_revoked_expired_and_disabled_user_keys_get_401(app, client):
    """A revoked key, an expired key and the key of a disabled user all get 401."""
    from datetime import timedelta

    from extensions import db
    from models import User

    user_id = make_user(app)
    revoked = make_key(app, user_id, status="revoked")
    expired = make_key(app, user_id, expires_at=utcnow() - timedelta(seconds=1))
    other_id = make_user(app, "bob")
    of_disabled = make_key(app, other_id)
    with app.app_context():
        db.session.get(User, other_id).disabled = True
        db.session.commit()
    for raw in (revoked, expired, of_disabled):
        response = client.post(CHAT, json={"model": "demo-chat", "messages": HELLO},
                               headers={"Authorization": f"Bearer {raw}"})
        assert_openai_error(response, 401, "invalid_api_key")


def test_x_api_key_header_is_accepted(client, api_key):
    """The Anthropic SDK's x-api-key header authenticates like a Bearer token."""
    response = client.post(CHAT, json={"model": "demo-chat", "messages": HELLO}, headers={"x-api-key": api_key})
    assert response.status_code == 200


@pytest.mark.parametrize("body,param", [
    ({"messages": HELLO}, "model"),
    ({"model": 7, "messages": HELLO}, "model"),
    ({"model": "demo-chat"}, "messages"),
    ({"model": "demo-chat", "messages": []}, "messages"),
    ({"model": "demo-chat", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"model": "demo-chat", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"model": "demo-chat", "messages": HELLO, "stream": "yes"}, "stream"),
    ({"model": "demo-chat", "messages": HELLO, "temperature": 9}, "temperature"),
    ({"model": "demo-chat", "messages": HELLO, "max_tokens": -1}, "max_tokens"),
    ({"model": "demo-chat", "messages": HELLO, "max_tokens": 10**12}, "max_tokens"),
    ({"model": "demo-chat", "messages": HELLO, "n": 100}, "n"),
    ({"model": "demo\x00chat", "messages": HELLO}, "model"),
])
def test_invalid_bodies_get_400_naming_the_field(client, auth, body, param):
    """Each malformed field is refused with 400 and named in `param`."""
    error = assert_openai_error(client.post(CHAT, json=body, headers=auth), 400)
    assert error["param"] == param


def test_invalid_and_deeply_nested_json_get_400(client, auth):
    """Invalid JSON and JSON nested 10,000 levels deep get 400, and the worker survives."""
    assert_openai_error(client.post(CHAT, data="{nope", headers=auth), 400, "invalid_json")
    assert_openai_error(client.post(CHAT, data="[" * 10000 + "]" * 10000, headers=auth), 400)
    assert client.post(CHAT, json={"model": "demo-chat", "messages": HELLO}, headers=auth).status_code == 200


def test_unknown_model_gets_404(client, auth):
    """An unknown model is 404 model_not_found."""
    assert_openai_error(client.post(CHAT, json={"model": "gpt-9", "messages": HELLO}, headers=auth), 404, "model_not_found")


def test_oversized_body_gets_413(make_app):
    """A body over the size limit is 413 in OpenAI's shape."""
    app = make_app(MAX_CONTENT_LENGTH=1024)
    raw = make_key(app, make_user(app))
    big = {"model": "demo-chat", "messages": [{"role": "user", "content": "x" * 5000}]}
    response = app.test_client().post(CHAT, json=big, headers={"Authorization": f"Bearer {raw}"})
    assert_openai_error(response, 413)


def test_model_outside_key_allow_list_gets_403(app, client):
    """A key limited to some models gets 403 for others and only sees its models in /v1/models."""
    raw = make_key(app, make_user(app), model_limits=["demo-mini"])
    headers = {"Authorization": f"Bearer {raw}"}
    assert_openai_error(client.post(CHAT, json={"model": "demo-chat", "messages": HELLO}, headers=headers), 403,
                        "model_not_allowed")
    assert [m["id"] for m in client.get("/v1/models", headers=headers).get_json()["data"]] == ["demo-mini"]


def test_ip_allow_list_is_enforced(app, client):
    """A key limited to a network is refused from other addresses with 403."""
    raw = make_key(app, make_user(app), allow_ips=["10.0.0.0/8"])
    response = client.post(CHAT, json={"model": "demo-chat", "messages": HELLO},
                           headers={"Authorization": f"Bearer {raw}"})
    assert_openai_error(response, 403, "ip_not_allowed")
