"""RELIABILITY D7 under gunicorn: a key's limit of N a minute is N for the whole instance (4 gevent
workers), through the instance file without Redis and through Redis with it; not N × workers."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from helpers import served_toml
from conftest import make_key, make_user, served_gateway
from extensions import db
from servers import gunicorn_server

RPM = 10
WORKERS = 4


@pytest.fixture
def gateway(tmp_path, upstream):
    """One free model, a user with two keys of rpm 10, and the environment for gunicorn."""
    app, env = served_gateway(tmp_path, served_toml(upstream))
    user_id = make_user(app)
    keys = [make_key(app, user_id, name, rpm=RPM) for name in ("sequential", "concurrent")]
    with app.app_context():
        db.engine.dispose()
    return env, keys



def ask(base, key, forged=False):
    """One chat request on a fresh connection, so gunicorn spreads them over its workers."""
    headers = {"Authorization": f"Bearer {key}"}
    if forged:
        headers.update({"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "999", "X-Forwarded-For": "203.0.113.9"})
    return requests.post(base + "/v1/chat/completions", headers=headers, timeout=10,
                         json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]})


def check_one_limit_for_all_workers(base, keys, upstream):
    sequential, concurrent = keys
    answers = [ask(base, sequential, forged=True) for _ in range(RPM + 5)]
    assert [a.status_code for a in answers] == [200] * RPM + [429] * 5
    assert [int(a.headers["X-RateLimit-Remaining"]) for a in answers] == list(range(RPM - 1, -1, -1)) + [0] * 5
    for refused in answers[RPM:]:
        retry_after = int(refused.headers["Retry-After"])
        assert 1 <= retry_after <= 60 and int(refused.headers["X-RateLimit-Reset"]) == retry_after
        assert refused.headers["X-RateLimit-Limit"] == str(RPM)
    assert len(upstream.requests) == RPM                       # the throttled ones were never forwarded

    with ThreadPoolExecutor(RPM + 5) as pool:                  # all at once: the workers race for the entries
        statuses = sorted(a.status_code for a in pool.map(lambda _: ask(base, concurrent), range(RPM + 5)))
    assert statuses == [200] * RPM + [429] * 5
    assert len(upstream.requests) == 2 * RPM


def test_a_keys_limit_holds_across_the_workers_of_an_instance(gateway, upstream):
    env, keys = gateway
    with gunicorn_server(env, workers=WORKERS) as base:
        assert requests.get(base + "/health", timeout=5).json()["rate_limit_storage"] == "instance file"
        check_one_limit_for_all_workers(base, keys, upstream)


def test_a_keys_limit_holds_across_workers_through_redis(gateway, upstream, redis_proc):
    env, keys = gateway
    with gunicorn_server({**env, "REDIS_URL": redis_proc.url}, workers=WORKERS) as base:
        assert requests.get(base + "/health", timeout=5).json()["rate_limit_storage"] == "redis"
        check_one_limit_for_all_workers(base, keys, upstream)
