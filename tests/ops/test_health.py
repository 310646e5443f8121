"""The probes (SPEC 2.6): /health/live, /ready and /health answer without credentials, name no
provider, model or key, report a lost Redis as "degraded" (and its return), and /ready turns 503
as soon as gunicorn asks a worker to stop, while the worker finishes what it is serving."""
import os
import signal
import threading
import time

import pytest
import requests
import sqlalchemy as sa

from helpers import served_toml
from conftest import make_key, make_user, served_gateway
from extensions import db
from fake_upstream import Fault
from gateway.sharedstate import BACKOFF_S
from models import RequestLog
from servers import gunicorn_server, redis_server, worker_pids

SECRETS = ("acme-cloud", "zeta-model", "sk-probe-secret-123456")     # provider, model, key


@pytest.fixture
def probed(make_app, upstream):
    """An app whose one provider, model and key have names a probe must never show."""
    def build(**overrides):
        return make_app({"demo": {"enabled": False},
                         "providers": {"acme-cloud": {"type": "openai", "base_url": upstream.url + "/v1",
                                                      "api_keys": ["sk-probe-secret-123456"]}},
                         "models": {"zeta-model": {"provider": "acme-cloud"}}}, **overrides)
    return build



def test_probes_answer_without_credentials_and_name_nothing(probed):
    client = probed().test_client()
    live, ready, health = client.get("/health/live"), client.get("/ready"), client.get("/health")
    assert (live.status_code, live.get_json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.get_json()) == (200, {"status": "ready"})
    assert health.status_code == 200
    assert health.get_json() == {
        "status": "healthy", "version": health.get_json()["version"],
        "components": {"database": "ok", "redis": "not configured",
                       "llm_services": {"configured": 1, "all_circuits_open": 0}},
        "retry_enabled": True, "circuit_breaker_enabled": True, "rate_limit_storage": "instance file"}
    for response in (live, ready, health):
        assert not any(secret in response.get_data(as_text=True) for secret in SECRETS)


def test_a_provider_with_every_circuit_open_is_degraded_and_counted_not_named(probed):
    app = probed()
    breakers = app.extensions["gateway"].router.breakers
    for _ in range(app.extensions["gateway"].settings.breaker.failure_threshold):
        breakers.failure("acme-cloud/zeta-model")           # the gateway's own failures need no quorum
    health = app.test_client().get("/health")
    assert health.status_code == 200
    assert health.get_json()["status"] == "degraded"
    assert health.get_json()["components"]["llm_services"] == {"configured": 1, "all_circuits_open": 1}
    assert not any(secret in health.get_data(as_text=True) for secret in SECRETS)


def test_lost_redis_is_degraded_not_down_and_recovers_by_itself(probed, redis_proc):
    client = probed(REDIS_URL=redis_proc.url).test_client()
    assert client.get("/health").get_json()["components"]["redis"] == "ok"

    redis_proc.process.kill()
    redis_proc.process.wait(5)
    health = client.get("/health")
    assert health.status_code == 200
    assert (health.get_json()["status"], health.get_json()["components"]["redis"]) == ("degraded", "degraded")
    assert client.get("/ready").status_code == 200           # requests are still served, from local state

    with redis_server(port=redis_proc.port):
        deadline = time.monotonic() + BACKOFF_S + 5
        while client.get("/health").get_json()["components"]["redis"] != "ok":
            assert time.monotonic() < deadline, "Redis came back but /health still says degraded"
            time.sleep(0.5)
        assert client.get("/health").get_json()["status"] == "healthy"


def test_ready_turns_503_on_sigterm_while_in_flight_requests_finish(tmp_path, upstream):
    database = f"sqlite:///{tmp_path / 'gateway.sqlite'}"
    app, env = served_gateway(tmp_path, served_toml(upstream), database)
    key = {"Authorization": f"Bearer {make_key(app, make_user(app))}"}
    with app.app_context():
        db.engine.dispose()
    upstream.script(Fault.slow(3))
    in_flight = []

    with gunicorn_server(env, workers=1) as base:
        probe = requests.Session()                 # a kept-alive connection still reaches the stopping worker
        assert probe.get(base + "/ready", timeout=5).status_code == 200
        caller = threading.Thread(target=lambda: in_flight.append(requests.post(
            base + "/v1/chat/completions", headers=key, timeout=15,
            json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]})))
        caller.start()
        deadline = time.monotonic() + 5
        while not upstream.requests:
            assert time.monotonic() < deadline, "the request never reached the upstream"
            time.sleep(0.05)

        os.kill(worker_pids(base)[0], signal.SIGTERM)     # what gunicorn's master sends each worker on its own SIGTERM
        deadline = time.monotonic() + 3
        while (ready := probe.get(base + "/ready", timeout=5)).status_code == 200:
            assert time.monotonic() < deadline, "/ready still 200 after SIGTERM"
            time.sleep(0.05)
        caller.join(15)

    assert (ready.status_code, ready.json()) == (503, {"status": "unavailable", "reason": "draining"})
    assert in_flight and in_flight[0].status_code == 200     # the request in flight was finished, not cut
    with app.app_context():                                  # and its log row committed before the worker left
        logged = db.session.scalars(sa.select(RequestLog.status)
                                    .where(RequestLog.request_id == in_flight[0].headers["X-Request-ID"])).all()
        db.engine.dispose()
    assert logged == [200]
