"""The detailed health family (SPEC 2.6): only an admin's key, an admin's JWT or the METRICS_TOKEN
reads it; the circuit-breaker view shows a circuit opened by real upstream failures; nothing
names a provider key's text."""
import time

import jwt
import pytest

from conftest import make_key, make_user
from extensions import db
from fake_upstream import Fault
from gateway import pricing
from helpers import gateway_config
from models import credit

TOKEN = "health-token-for-tests-only"
JWT_SECRET = "health-jwt-secret-for-tests-only-0123"
UPSTREAM_SECRETS = ("sk-upstream-secret-first-0123456789", "sk-upstream-secret-second-0123456789")
FAMILY = ("/health/detailed", "/health/circuit-breakers", "/health/monitoring", "/health/system", "/health/history")
HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gateway(make_app, upstream):
    """Models `hd-ok` and `hd-down` (whose upstream answers 503); a circuit opens after 2 failures of one user."""
    app = make_app(gateway_config(upstream, ["hd-ok", "hd-down"], keys=UPSTREAM_SECRETS,
                                  circuit_breaker={"failure_threshold": 2, "distinct_callers": 1}),
                   METRICS_TOKEN=TOKEN, JWT_SECRET=JWT_SECRET)
    upstream.script(Fault.status(503), model="hd-down")
    app.admin = make_key(app, make_user(app, "root", role="admin"))
    user_id = make_user(app, "dave")
    app.user = make_key(app, user_id)
    with app.app_context():
        credit.grant(user_id, 5 * pricing.MICRO_PER_USD)
        db.session.commit()
    return app


def get(app, path, credential=None):
    headers = {"Authorization": f"Bearer {credential}"} if credential is not None else {}
    return app.test_client().get(path, headers=headers)


def chat(app, model):
    return app.test_client().post("/v1/chat/completions", json={"model": model, "messages": HELLO},
                                  headers={"Authorization": f"Bearer {app.user}"})


@pytest.mark.parametrize("path", FAMILY)
def test_only_an_admin_or_the_token_reads(gateway, path):
    missing = get(gateway, path)
    assert missing.status_code == 401 and set(missing.get_json()) == {"detail", "code", "error_type"}
    assert get(gateway, path, "not-the-token").status_code == 401
    refused = get(gateway, path, gateway.user)
    assert refused.status_code == 403 and refused.get_json()["error_type"] == "admin_required"
    assert get(gateway, path, gateway.admin).status_code == 200
    assert get(gateway, path, TOKEN).status_code == 200
    admin_jwt = jwt.encode({"sub": "root", "exp": int(time.time()) + 60}, JWT_SECRET, algorithm="HS256")
    assert get(gateway, path, admin_jwt).status_code == 200


def test_a_circuit_opened_by_upstream_failures_is_shown(gateway, upstream):
    assert chat(gateway, "hd-ok").status_code == 200
    before = get(gateway, "/health/circuit-breakers", TOKEN).get_json()
    assert not [c for c in before["circuit_breakers"] if c.get("model") == "hd-down"]
    assert chat(gateway, "hd-down").status_code >= 500           # three attempts: the circuit opens on the second

    view = get(gateway, "/health/circuit-breakers", TOKEN)
    body = view.get_json()
    down = [c for c in body["circuit_breakers"] if c.get("model") == "hd-down"]
    assert len(down) == 1
    assert down[0]["kind"] == "model" and down[0]["provider"] == "openai" and down[0]["state"] == "open"
    assert down[0]["failure_count"] >= 2 and down[0]["failure_threshold"] == 2 and down[0]["last_failure_time"]
    assert body["circuit_breaker_config"] == {"failure_threshold": 2, "recovery_timeout": 60.0, "distinct_callers": 1}
    assert body["retry_config"]["max_attempts"] == 3
    for path in FAMILY:
        text = get(gateway, path, TOKEN).get_data(as_text=True)
        assert not any(secret in text for secret in UPSTREAM_SECRETS), path


def test_detailed_reports_each_component_with_its_duration(gateway):
    body = get(gateway, "/health/detailed", TOKEN).get_json()
    assert body["status"] == "healthy"
    assert set(body["components"]) == {"database", "redis", "rate_limits", "llm_services"}
    database = body["components"]["database"]
    assert database["status"] == "ok" and database["details"]["dialect"] in ("sqlite", "postgresql")
    assert all(isinstance(c["duration_ms"], float) and c["message"] for c in body["components"].values())
    assert body["components"]["redis"]["status"] == "not configured"
    assert body["components"]["llm_services"]["details"] == {"openai": "ok"}


def test_detailed_is_degraded_when_every_circuit_of_a_provider_is_open(make_app, upstream):
    app = make_app(gateway_config(upstream, ["hd-down"], circuit_breaker={"failure_threshold": 2,
                                                                          "distinct_callers": 1}),
                   METRICS_TOKEN=TOKEN)
    upstream.script(Fault.status(503))
    app.user = make_key(app, make_user(app))
    chat(app, "hd-down")
    body = get(app, "/health/detailed", TOKEN).get_json()
    assert body["status"] == "degraded"
    assert body["components"]["llm_services"]["details"] == {"openai": "circuits open"}


def test_history_counts_this_hours_requests_from_the_log(gateway):
    assert chat(gateway, "hd-ok").status_code == 200
    assert chat(gateway, "hd-ok").status_code == 200
    assert chat(gateway, "hd-down").status_code >= 500
    assert chat(gateway, "no-such-model").status_code == 404
    body = get(gateway, "/health/history", TOKEN).get_json()
    assert body["source"] == "request_log" and body["window_hours"] == 24
    now = body["hours"][-1]
    assert (now["requests"], now["client_errors"], now["failed"]) == (4, 1, 1)
    assert now["hour"] == time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime())
    assert now["mean_latency_ms"] >= 0


def test_system_and_monitoring_say_what_is_there(gateway):
    system = get(gateway, "/health/system", TOKEN).get_json()
    assert 0 <= system["cpu_percent"] <= 100 and 0 <= system["memory_percent"] <= 100 and 0 < system["disk_usage"] <= 100
    assert system["worker"]["max_rss_mb"] > 0 and len(system["load_average"]) == 3
    assert set(gateway.test_client().get("/api/v1/health").get_json()["system_stats"]) == {
        "cpu_percent", "memory_percent", "disk_usage"}
    monitoring = get(gateway, "/health/monitoring", TOKEN).get_json()
    assert monitoring["prometheus"]["enabled"] and monitoring["prometheus"]["token_configured"]
    assert not monitoring["sentry"]["enabled"] and not monitoring["langfuse"]["enabled"]


def test_the_view_shows_circuits_another_instance_opened_through_redis(make_app, upstream, redis_proc):
    """Two gateways sharing Redis (and no state file): the one that was not called shows the open circuit."""
    def build():
        return make_app(gateway_config(upstream, ["hd-down"], circuit_breaker={"failure_threshold": 2,
                                                                               "distinct_callers": 1}),
                        METRICS_TOKEN=TOKEN, REDIS_URL=redis_proc.url, HEALTH_STATE_FILE="")
    called, other = build(), build()
    upstream.script(Fault.status(503))
    called.user = make_key(called, make_user(called))
    assert chat(called, "hd-down").status_code >= 500
    circuits = get(other, "/health/circuit-breakers", TOKEN).get_json()["circuit_breakers"]
    assert [(c["model"], c["state"]) for c in circuits if c["kind"] == "model"] == [("hd-down", "open")]
    assert get(other, "/health/detailed", TOKEN).get_json()["components"]["redis"]["status"] == "ok"
    for app in (called, other):
        app.extensions["gateway"].shared_state.client.close()     # its Redis connections, before the app is collected
