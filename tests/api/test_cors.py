"""CORS on the API routes only, from `[security] cors_origins`: preflights answered without a key,
answers readable by the allowed origins (errors and streams included), never with credentials."""
import pytest

from conftest import make_key, make_user
from gateway import config as gateway_config_module
from gateway.config import ConfigError
from helpers import gateway_config

APP_ORIGIN = "https://app.example.com"


def preflight(client, path, origin=APP_ORIGIN, headers="authorization, content-type, x-stainless-os"):
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                         "Access-Control-Request-Headers": headers})


@pytest.fixture
def gateway(make_app, upstream):
    def build(origins):
        app = make_app(gateway_config(upstream, ["m1"], keys=("key-a",), security={"cors_origins": origins}))
        return app.test_client(), {"Authorization": f"Bearer {make_key(app, make_user(app))}"}
    return build


def test_preflight_is_answered_without_a_key_for_an_allowed_origin(gateway):
    client, _ = gateway([APP_ORIGIN])
    for path in ("/v1/chat/completions", "/v1/responses", "/v1/messages", "/api/v1/provider-keys", "/billing/balance"):
        response = preflight(client, path)
        assert response.status_code == 204, path
        assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
        allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
        assert {"authorization", "x-api-key", "content-type", "anthropic-version", "anthropic-beta",
                "x-openai-api-key", "x-stainless-os"} <= allowed
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert "Access-Control-Allow-Credentials" not in response.headers


def test_answers_and_errors_are_readable_by_the_allowed_origin_only(gateway):
    client, headers = gateway([APP_ORIGIN])
    ok = client.post("/v1/chat/completions", headers={**headers, "Origin": APP_ORIGIN},
                     json={"model": "m1", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    exposed = ok.headers["Access-Control-Expose-Headers"]
    for name in ("X-Request-ID", "X-Gateway-Model", "X-Credits-Remaining", "X-RateLimit-Remaining", "Retry-After"):
        assert name in exposed
    assert "Origin" in ok.headers["Vary"]
    refused = client.get("/v1/models", headers={"Origin": APP_ORIGIN})
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    other = client.get("/v1/models", headers={**headers, "Origin": "https://evil.example"})
    assert other.status_code == 200 and "Access-Control-Allow-Origin" not in other.headers
    assert "Access-Control-Allow-Origin" not in preflight(client, "/v1/models", "https://evil.example").headers


def test_web_pages_never_get_cors(gateway):
    client, _ = gateway(["*"])
    for path in ("/login", "/keys", "/chat"):
        assert "Access-Control-Allow-Origin" not in client.get(path, headers={"Origin": APP_ORIGIN}).headers
        assert "Access-Control-Allow-Origin" not in preflight(client, path).headers


def test_star_allows_any_origin_but_never_credentials(gateway):
    client, headers = gateway(["*"])
    response = client.get("/v1/models", headers={**headers, "Origin": "https://anywhere.example", "Cookie": "session=x"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Access-Control-Allow-Credentials" not in preflight(client, "/v1/models").headers


def test_no_origins_configured_means_no_cors(gateway):
    client, headers = gateway([])
    assert "Access-Control-Allow-Origin" not in client.get("/v1/models", headers={**headers, "Origin": APP_ORIGIN}).headers
    assert "Access-Control-Allow-Origin" not in preflight(client, "/v1/models").headers


@pytest.mark.parametrize("origins", ["*", ["https://app.example.com/path"], ["app.example.com"], [1]])
def test_bad_cors_origins_are_a_configuration_error(origins):
    with pytest.raises(ConfigError, match="cors_origins"):
        gateway_config_module.parse({"security": {"cors_origins": origins}}, {})
