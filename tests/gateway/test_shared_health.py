"""Health state shared through a real Redis: two `SharedState`s stand for two workers (or instances)
and see one state; under gunicorn, a key cooled down by one worker is not tried by another (through
Redis, or without it through the instance's state file); losing Redis serves from per-worker state
and recovers by itself."""
import logging
import threading
import time
from types import SimpleNamespace

import pytest
import redis
import requests

from helpers import served_toml
from conftest import make_key, make_user, served_gateway
from extensions import db
from fake_upstream import Fault
from gateway.health import CLOSED, HALF_OPEN, OPEN
from gateway.sharedstate import BACKOFF_S, SharedState
from servers import gunicorn_server, redis_server

CIRCUIT = "openai/m1"



class Clock:
    """One hand-driven wall clock for both "workers"."""

    def __init__(self):
        self.now = 1_700_000_000.0

    def __call__(self):
        return self.now


def two_workers(url, clock, threshold=2, recovery=10, quorum=1, backoff=5.0):
    settings = SimpleNamespace(failure_threshold=threshold, recovery_timeout=recovery, distinct_callers=quorum)
    links = [SharedState(url, clock=clock, backoff=backoff) for _ in range(2)]
    return [link.breakers(settings) for link in links] + [link.key_health() for link in links]


def state(breakers, name=CIRCUIT):
    return breakers.snapshot()[name]["state"]


def test_failures_through_one_worker_open_the_circuit_for_the_other(redis_proc):
    a, b, _, _ = two_workers(redis_proc.url, Clock())
    a.failure(CIRCUIT)
    assert b.allow(CIRCUIT) and state(b) == CLOSED
    b.failure(CIRCUIT)
    assert not a.allow(CIRCUIT) and not b.allow(CIRCUIT) and not b.would_allow(CIRCUIT)
    assert b.snapshot()[CIRCUIT] == {"state": OPEN, "failure_count": 2, "last_failure_time": 1_700_000_000.0,
                                     "failure_threshold": 2, "recovery_timeout": 10}
    assert not b.provider_usable("openai") and b.provider_usable("anthropic")


def test_the_half_open_probe_is_taken_once_across_workers(redis_proc):
    clock = Clock()
    a, b, _, _ = two_workers(redis_proc.url, clock)
    a.failure(CIRCUIT)
    a.failure(CIRCUIT)
    clock.now += 10
    assert b.would_allow(CIRCUIT) and a.would_allow(CIRCUIT)      # looking takes nothing
    assert a.allow(CIRCUIT) and state(b) == HALF_OPEN
    assert not b.allow(CIRCUIT) and not b.would_allow(CIRCUIT)
    a.success(CIRCUIT)
    assert state(b) == CLOSED and b.allow(CIRCUIT)


def test_concurrent_callers_in_two_workers_get_exactly_one_probe(redis_proc):
    clock = Clock()
    a, b, _, _ = two_workers(redis_proc.url, clock, threshold=1)
    a.failure(CIRCUIT)
    clock.now += 10
    answers = []
    threads = [threading.Thread(target=lambda w=w: answers.append(w.allow(CIRCUIT))) for w in (a, b) * 10]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [False] * 19 + [True]


def test_concurrent_failures_are_all_counted_and_trip_once(redis_proc):
    clock = Clock()
    a, b, _, _ = two_workers(redis_proc.url, clock, threshold=5)
    threads = [threading.Thread(target=w.failure, args=(CIRCUIT,)) for w in (a, b) * 20]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert b.snapshot()[CIRCUIT]["failure_count"] == 40 and state(a) == OPEN
    clock.now += 10                                  # one trip: open for one recovery period
    assert b.allow(CIRCUIT)


def test_a_failed_probe_reopens_for_longer_everywhere(redis_proc):
    clock = Clock()
    a, b, _, _ = two_workers(redis_proc.url, clock, threshold=1)
    a.failure(CIRCUIT)
    clock.now += 10
    assert b.allow(CIRCUIT)
    b.failure(CIRCUIT)                               # the probe failed: second trip
    clock.now += 19
    assert not a.allow(CIRCUIT)
    clock.now += 1
    assert a.allow(CIRCUIT)


def test_the_quorum_counts_distinct_callers_across_workers(redis_proc):
    """One user's failures through both workers open only that user's own circuit; a second user's
    failure (through the other worker) completes the quorum for the shared one."""
    a, b, _, _ = two_workers(redis_proc.url, Clock(), threshold=2, quorum=2)
    a.failure(CIRCUIT, "alice")
    b.failure(CIRCUIT, "alice")
    a.failure(CIRCUIT, "alice")
    assert not b.allow(CIRCUIT, "alice")             # alice's own circuit is open
    assert b.allow(CIRCUIT, "bob") and state(b) == CLOSED
    assert all("@" not in name for name in a.snapshot())
    b.failure(CIRCUIT, "bob")
    assert not a.allow(CIRCUIT, "carol") and state(a) == OPEN
    b.success(CIRCUIT, "alice")                      # a success closes the shared circuit and alice's own
    assert a.allow(CIRCUIT, "alice") and a.allow(CIRCUIT, "carol")


def test_a_cooldown_in_one_worker_holds_in_the_other_until_it_expires(redis_proc):
    _, _, a, b = two_workers(redis_proc.url, Clock())
    a.cool_down("op:openai#1", 0.5, "429: slow down")
    assert not b.usable("op:openai#1") and not b.usable("op:openai#1", "m1")
    entry = b.snapshot()["op:openai#1"]
    assert entry["reason"] == "429: slow down" and 0 < entry["until"] <= 0.5
    assert b.usable("op:openai#2") and b.usable(None)
    time.sleep(0.6)
    assert b.usable("op:openai#1") and b.snapshot() == {}


def test_keys_out_until_fixed_and_per_model_are_shared_and_restored_everywhere(redis_proc):
    _, _, a, b = two_workers(redis_proc.url, Clock())
    a.cool_down("user:1:abc", 60, "403: not this model", "m1")
    assert not b.usable("user:1:abc", "m1") and b.usable("user:1:abc", "m2") and b.usable("user:1:abc")
    a.mark_bad("user:1:abc", "401: invalid key")
    assert not b.usable("user:1:abc", "m2")
    snapshot = b.snapshot()
    assert snapshot["user:1:abc"] == {"reason": "401: invalid key", "until": None}
    assert snapshot["user:1:abc|m1"]["reason"] == "403: not this model"
    b.restore("user:1:abc")
    assert a.usable("user:1:abc", "m1") and a.snapshot() == {}


def test_entries_expire_when_idle(redis_proc):
    a, _, keys, _ = two_workers(redis_proc.url, Clock())
    a.failure(CIRCUIT, "alice")
    keys.mark_bad("op:openai#1", "401")
    client = redis.Redis.from_url(redis_proc.url)
    assert all(0 < client.pttl(name) <= 86_400_000 for name in client.scan_iter("llmgw:*"))
    assert len(list(client.scan_iter("llmgw:*"))) == 4        # shared circuit, alice's own, the index, the key


def test_losing_redis_falls_back_to_per_worker_state_and_recovers(redis_proc, caplog):
    clock = Clock()
    a, b, keys_a, _ = two_workers(redis_proc.url, clock, threshold=1, backoff=0.2)
    a.failure(CIRCUIT)
    redis_proc.process.kill()
    redis_proc.process.wait()
    with caplog.at_level(logging.WARNING, logger="gateway.sharedstate"):
        started = time.monotonic()
        assert a.allow("openai/m2") and b.allow(CIRCUIT)       # per worker now: b has seen no failure
        keys_a.cool_down("op:openai#1", 60, "429")
        assert not keys_a.usable("op:openai#1")
        a.failure("openai/m2")
        assert not a.allow("openai/m2") and b.allow("openai/m2")
        assert time.monotonic() - started < 1
    assert a.link.degraded and b.link.degraded
    assert len([r for r in caplog.records if "unreachable" in r.message]) == 2      # once per worker
    with redis_server(redis_proc.port):
        time.sleep(0.25)                             # past the back-off: Redis is tried again
        assert b.allow("openai/m2") and a.allow("openai/m2")      # the (empty) shared state again
        assert not a.link.degraded
        a.failure(CIRCUIT)
        assert not b.allow(CIRCUIT) and keys_a.usable("op:openai#1")


def test_redis_that_is_never_there_costs_nothing_but_a_warning(caplog):
    settings = SimpleNamespace(failure_threshold=1, recovery_timeout=10, distinct_callers=1)
    link = SharedState("redis://127.0.0.1:1/0")
    breakers, keys = link.breakers(settings), link.key_health()
    with caplog.at_level(logging.WARNING, logger="gateway.sharedstate"):
        for _ in range(50):
            assert breakers.allow(CIRCUIT) and keys.usable("op:openai#1")
    assert link.degraded and len(caplog.records) == 1
    breakers.failure(CIRCUIT)
    assert not breakers.allow(CIRCUIT) and breakers.snapshot()[CIRCUIT]["state"] == OPEN


# --- end to end: gunicorn with two workers ---------------------------------------------------------

@pytest.fixture
def gateway_env(tmp_path, upstream):
    """One model on one provider with two operator keys, and a user; the environment for gunicorn."""
    app, env = served_gateway(tmp_path, served_toml(upstream, keys=("key-1", "key-2")))
    headers = {"Authorization": f"Bearer {make_key(app, make_user(app, 'alice'))}"}
    with app.app_context():
        db.engine.dispose()
    return env, headers


def ask_many(base, headers, count=10):
    """`count` requests, each on a fresh connection (so gunicorn spreads them over its workers)."""
    return [requests.post(base + "/v1/chat/completions", headers=headers, timeout=10,
                          json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]}).status_code
            for _ in range(count)]


def calls_with(upstream, key):
    return sum(1 for r in upstream.requests if r.key == key)


@pytest.mark.parametrize("through", ["redis", "instance-file"])
def test_a_key_cooled_down_by_one_worker_is_not_tried_by_another(request, gateway_env, upstream, through):
    """Shared through Redis, or without it through the instance's state file: one 429 in all."""
    env, headers = gateway_env
    if through == "redis":
        env = {**env, "REDIS_URL": request.getfixturevalue("redis_proc").url}
    upstream.script(Fault.status(429, "rate limited", retry_after=30), key="key-1")
    with gunicorn_server(env) as base:
        assert ask_many(base, headers) == [200] * 10
    assert calls_with(upstream, "key-1") == 1 and calls_with(upstream, "key-2") == 10


def test_losing_redis_mid_way_serves_per_worker_and_shares_again_once_it_is_back(gateway_env, upstream, redis_proc):
    env, headers = gateway_env
    upstream.script(Fault.status(429, "rate limited", retry_after=30), key="key-1")
    with gunicorn_server({**env, "REDIS_URL": redis_proc.url}) as base:
        assert ask_many(base, headers, 4) == [200] * 4
        assert calls_with(upstream, "key-1") == 1
        redis_proc.process.kill()                    # the cooldown is lost with it
        redis_proc.process.wait()
        assert ask_many(base, headers) == [200] * 10
        assert 1 <= calls_with(upstream, "key-1") - 1 <= 2      # at most once per worker, as without Redis
        with redis_server(redis_proc.port) as fresh:
            time.sleep(BACKOFF_S + 1)                # past every worker's back-off
            before = calls_with(upstream, "key-1")
            assert ask_many(base, headers) == [200] * 10
            assert calls_with(upstream, "key-1") == before + 1          # one worker, then shared again
            assert redis.Redis.from_url(fresh.url).exists("llmgw:key:op:openai#1")
