"""The SSRF guard for user-entered base URLs, and seed 001's generate-text, vision and health."""
import base64
import io

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from conftest import make_key, make_user
from extensions import db
from fake_upstream import Fault
from gateway import ssrf
from helpers import gateway_config
from models import UserProviderKey

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


@pytest.fixture
def gateway(make_app, upstream):
    app = make_app(gateway_config(upstream, ["m1"], keys=("operator-key",), retry={"max_attempts": 1}))
    return app, app.test_client(), {"Authorization": f"Bearer {make_key(app, make_user(app))}"}


@pytest.mark.parametrize("url, reason", [
    ("http://127.0.0.1:8080/v1", "loopback"), ("http://169.254.169.254/latest", "link-local"),
    ("http://10.1.2.3/v1", "private"), ("http://[::1]/v1", "loopback"), ("http://localhost/v1", "loopback"),
    ("ftp://example.com/v1", "http"), ("file:///etc/passwd", "http"), ("http://user:pw@example.com", "Credentials"),
    ("http://0.0.0.0/v1", "reserved"),
])
def test_user_base_urls_pointing_inward_are_refused(gateway, url, reason):
    """Saving a provider key with an inward or non-http base URL is refused with a clear message."""
    app, client, headers = gateway
    response = client.post("/api/v1/provider-keys", headers=headers,
                           json={"provider_name": "openai", "api_key": "sk-x", "base_url": url})
    assert response.status_code == 400
    assert response.get_json()["error_type"] == "unsafe_url"
    assert reason.split()[0].lower() in response.get_json()["detail"].lower()
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(UserProviderKey.id))) == 0


def test_allowlist_and_call_time_check(make_app, upstream):
    """An allow-listed host may be saved; a stored URL that is unsafe at call time is skipped, not called."""
    assert ssrf.check_url("http://127.0.0.1:9/v1", ("127.0.0.0/8",))
    app = make_app(gateway_config(upstream, ["m1"], keys=("operator-key",), retry={"max_attempts": 1}))
    user = make_user(app)
    headers = {"Authorization": f"Bearer {make_key(app, user)}"}
    with app.app_context():
        db.session.add(UserProviderKey(user_id=user, provider_name="openai", name="inward", last4="zzzz",
                                       ciphertext=app.extensions["vault"].encrypt("sk-inward-zzzz"),
                                       base_url=upstream.url + "/v1", is_selected=True))
        db.session.commit()
    assert app.test_client().post("/v1/chat/completions", headers=headers,
                                  json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
    assert [r.key for r in upstream.requests] == ["operator-key"]


def test_a_name_that_rebinds_inward_after_the_check_is_refused_at_connect(make_app, upstream, monkeypatch):
    """DNS rebinding: the name resolves to a public address when checked, then to 127.0.0.1 when the
    call connects. The connection's real address is checked too: the user's key is never sent there,
    and the request is served with the operator's key instead."""
    monkeypatch.setattr(ssrf, "_resolve", lambda host, port: ["93.184.216.34"])     # the check's DNS answer
    app = make_app(gateway_config(upstream, ["m1"], keys=("operator-key",), retry={"max_attempts": 1}))
    user = make_user(app)
    headers = {"Authorization": f"Bearer {make_key(app, user)}"}
    response = app.test_client().post("/api/v1/provider-keys", headers=headers, json={
        "provider_name": "openai", "api_key": "sk-rebound-key", "name": "rebound",
        "base_url": f"http://localhost:{upstream.port}/v1"})
    assert response.status_code == 201
    answer = app.test_client().post("/v1/chat/completions", headers=headers,
                                    json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200
    assert [r.key for r in upstream.requests] == ["operator-key"]
    [key] = app.test_client().get("/api/v1/provider-keys", headers=headers).get_json()
    assert key["status"] == "invalid"                 # out of rotation until its owner fixes the URL


def test_generate_text(gateway, upstream):
    app, client, headers = gateway
    answer = client.post("/api/v1/chat/generate-text", headers=headers, json={
        "message": "And now?", "history": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]})
    assert answer.get_json() == {"response_text": upstream.reply_text, "model_used": "m1"}
    assert [m["content"] for m in upstream.requests[0].body["messages"]] == ["Hi", "Hello", "And now?"]
    missing = client.post("/api/v1/chat/generate-text", headers=headers, json={})
    assert missing.status_code == 400 and set(missing.get_json()) == {"detail", "code", "error_type"}


def test_vision_checks_content_not_names(gateway, upstream):
    """A real PNG is sent as an image part; text named .png is 415; an oversized file is 413."""
    app, client, headers = gateway
    ok = client.post("/api/v1/vision/extract-text", headers=headers, content_type="multipart/form-data",
                     data={"file": (io.BytesIO(PNG), "scan.bin"), "prompt": "Read it"})
    assert ok.status_code == 200
    assert ok.get_json() == {"filename": "scan.bin", "content_type": "image/png", "extracted_text": upstream.reply_text,
                             "model_used": "m1"}
    part = upstream.requests[0].body["messages"][0]["content"][1]
    assert part["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    fake = client.post("/api/v1/vision/extract-text", headers=headers, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(b"just text, honestly"), "photo.png")})
    assert fake.status_code == 415
    boundary, body = encode_multipart({"file": FileStorage(io.BytesIO(PNG + b"\0" * (11 * 1024 * 1024)), "big.png")})
    big = client.post("/api/v1/vision/extract-text", headers=headers, data=body,
                      content_type=f"multipart/form-data; boundary={boundary}")
    assert big.status_code == 413
    assert len(upstream.requests) == 1


def test_health_needs_no_key_and_calls_no_upstream(gateway, upstream):
    app, client, _ = gateway
    body = client.get("/api/v1/health").get_json()
    assert body["status"] == "healthy" and body["providers"] == {"openai": True}
    assert set(body["system_stats"]) == {"cpu_percent", "memory_percent", "disk_usage"}
    assert upstream.requests == []
    upstream.script(Fault.status(500))
    assert client.get("/api/v1/health").status_code == 200 and upstream.requests == []
