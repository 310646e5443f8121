"""Without Redis, the workers of one instance share breakers and key health through a state file:
two `LocalState`s on one file stand for two workers and see one state."""
import threading
from types import SimpleNamespace

from gateway.health import CLOSED, HALF_OPEN, OPEN
from gateway.localstate import LocalState

CIRCUIT = "openai/m1"


class Clock:
    """One hand-driven monotonic clock for both "workers" (one clock for every process of a machine)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def two_workers(path, clock, threshold=2, recovery=10, quorum=1):
    settings = SimpleNamespace(failure_threshold=threshold, recovery_timeout=recovery, distinct_callers=quorum)
    links = [LocalState(str(path)) for _ in range(2)]
    return [link.breakers(settings, clock) for link in links] + [link.key_health(clock) for link in links]


def state(breakers, name=CIRCUIT):
    return breakers.snapshot()[name]["state"]


def test_failures_through_one_worker_open_the_circuit_for_the_other(tmp_path):
    a, b, _, _ = two_workers(tmp_path / "health.sqlite", Clock())
    a.failure(CIRCUIT)
    assert b.allow(CIRCUIT) and state(b) == CLOSED
    b.failure(CIRCUIT)
    assert not a.allow(CIRCUIT) and not b.allow(CIRCUIT) and not a.would_allow(CIRCUIT)
    assert b.snapshot()[CIRCUIT]["failure_count"] == 2
    assert not a.provider_usable("openai") and a.provider_usable("anthropic")


def test_concurrent_callers_in_two_workers_get_exactly_one_probe(tmp_path):
    clock = Clock()
    a, b, _, _ = two_workers(tmp_path / "health.sqlite", clock, threshold=1)
    a.failure(CIRCUIT)
    clock.now += 10
    answers = []
    threads = [threading.Thread(target=lambda w=w: answers.append(w.allow(CIRCUIT))) for w in (a, b) * 10]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [False] * 19 + [True]
    assert state(a) == state(b) == HALF_OPEN
    b.success(CIRCUIT)
    assert state(a) == CLOSED and a.allow(CIRCUIT)


def test_concurrent_failures_are_all_counted(tmp_path):
    a, b, _, _ = two_workers(tmp_path / "health.sqlite", Clock(), threshold=5)
    threads = [threading.Thread(target=w.failure, args=(CIRCUIT,)) for w in (a, b) * 20]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert a.snapshot()[CIRCUIT]["failure_count"] == 40 and state(b) == OPEN


def test_the_quorum_counts_distinct_callers_across_workers(tmp_path):
    a, b, _, _ = two_workers(tmp_path / "health.sqlite", Clock(), threshold=2, quorum=2)
    a.failure(CIRCUIT, "alice")
    b.failure(CIRCUIT, "alice")
    assert not a.allow(CIRCUIT, "alice") and b.allow(CIRCUIT, "bob")
    assert all("@" not in name for name in b.snapshot())
    a.failure(CIRCUIT, "bob")
    assert not b.allow(CIRCUIT, "carol") and state(b) == OPEN


def test_cooldowns_and_restores_hold_in_every_worker(tmp_path):
    clock = Clock()
    _, _, a, b = two_workers(tmp_path / "health.sqlite", clock)
    a.cool_down("op:openai#1", 30, "429: slow down")
    a.cool_down("op:openai#2", 60, "403: not this model", "m1")
    assert not b.usable("op:openai#1") and b.usable("op:openai#2") and not b.usable("op:openai#2", "m1")
    b.mark_bad("user:7:abc", "401: invalid key")
    assert not a.usable("user:7:abc") and a.snapshot()["user:7:abc"]["reason"] == "401: invalid key"
    clock.now += 30
    assert a.usable("op:openai#1") and b.usable("op:openai#1")
    a.restore("op:openai#2")
    assert b.usable("op:openai#2", "m1")


def test_a_worker_started_later_sees_the_state(tmp_path):
    """The file outlives a worker: a replacement worker starts with what the others learnt."""
    clock = Clock()
    a, _, keys, _ = two_workers(tmp_path / "health.sqlite", clock, threshold=1)
    a.failure(CIRCUIT)
    keys.cool_down("op:openai#1", 30, "429")
    late, _, late_keys, _ = two_workers(tmp_path / "health.sqlite", clock, threshold=1)
    assert not late.allow(CIRCUIT) and not late_keys.usable("op:openai#1")


def test_a_look_asks_sqlite_only_after_a_commit_and_then_sees_it(tmp_path):
    """Between commits a check reads the WAL index's header and runs no statement; after another
    worker's commit it asks SQLite again and takes the change in."""
    _, _, a, b = two_workers(tmp_path / "health.sqlite", Clock())
    statements = []
    b._table._db.set_trace_callback(statements.append)
    assert b.usable("op:openai#1")
    statements.clear()
    for _ in range(3):
        assert b.usable("op:openai#1")
    assert statements == []
    a.cool_down("op:openai#1", 30, "429: slow down")
    assert not b.usable("op:openai#1")
    assert any("data_version" in statement for statement in statements)
