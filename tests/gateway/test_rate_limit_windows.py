"""The local moving windows of rate limits (gateway.ratelimits.MemoryWindows, gateway.limitfile.InstanceFile):
exact counts, a request counted against all of its limits or none, refused requests taking no
entry, and one count for every process on one instance file. The HTTP side is tests/api/test_rate_limits.py."""
import multiprocessing
import sqlite3
import threading
import time

import pytest
from limits import RateLimitItemPerHour, RateLimitItemPerMinute, RateLimitItemPerSecond

from gateway.limitfile import SWEEP_EVERY_S, InstanceFile
from gateway.ratelimits import Limit, MemoryWindows


class Clock:
    """One hand-driven wall clock for every storage of a test (one clock for every process of a machine)."""

    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def per_minute(amount, *identifiers):
    return Limit.of(RateLimitItemPerMinute(amount), identifiers)


def per_second(amount, *identifiers):
    return Limit.of(RateLimitItemPerSecond(amount), identifiers)


def rows(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM entries").fetchone()[0]


@pytest.fixture(params=["memory", "instance file"])
def make_windows(request, tmp_path):
    """A function making the storage under test on a clock (each call one more worker, sharing the file)."""
    return lambda clock: MemoryWindows(clock) if request.param == "memory" else InstanceFile(str(tmp_path / "x"), clock)


def test_n_entries_then_refused_with_the_oldest_entrys_time(make_windows):
    clock, limit = Clock(), per_minute(3, "key", "1")
    windows = make_windows(clock)
    looks = []
    for _ in range(3):
        taken, seen, _ = windows.take([limit])
        assert taken
        looks.append(seen[0][0])
        clock.now += 1
    assert looks == [0, 1, 2]
    assert windows.take([limit]) == (False, [(3, clock.now - 3)], clock.now)


def test_a_refused_request_takes_nothing_from_any_window(make_windows):
    """The user's limit has room, the key's is full: neither window gains an entry."""
    clock, user, key = Clock(), per_minute(5, "user", "1"), per_minute(1, "key", "1")
    windows = make_windows(clock)
    assert windows.take([key, user])[0]
    for _ in range(4):
        taken, looks, _ = windows.take([user, key])
        assert not taken and looks == [(1, clock.now), (1, clock.now)]
    assert [windows.take([user])[0] for _ in range(5)] == [True] * 4 + [False]


def test_an_entry_leaves_the_window_after_its_expiry(make_windows):
    clock, limit = Clock(), per_minute(2, "key", "1")
    windows = make_windows(clock)
    windows.take([limit])
    clock.now += 30
    windows.take([limit])
    clock.now += 29.5
    assert windows.take([limit]) == (False, [(2, clock.now - 59.5)], clock.now)
    clock.now += 0.5                                          # the first entry is exactly a minute old: gone
    assert windows.take([limit]) == (True, [(1, clock.now - 30)], clock.now)


def test_a_clock_stepping_back_keeps_the_count_exact(make_windows):
    clock, limit = Clock(), per_minute(3, "key", "1")
    windows = make_windows(clock)
    windows.take([limit])
    clock.now -= 5
    assert [windows.take([limit])[0] for _ in range(3)] == [True, True, False]


def test_two_workers_on_one_instance_file_share_one_count(tmp_path):
    clock, limit, hourly = Clock(), per_minute(3, "key", "1"), Limit.of(RateLimitItemPerHour(100), ("global",))
    one, two = (InstanceFile(str(tmp_path / "x"), clock) for _ in range(2))
    taken = [(one, two)[i % 2].take([limit, hourly]) for i in range(5)]
    assert [t[0] for t in taken] == [True, True, True, False, False]
    assert [t[1][0][0] for t in taken] == [0, 1, 2, 3, 3]
    assert taken[2][1][1] == (2, clock.now)                   # the global window counted both workers too


def test_a_file_of_the_former_layout_counts_its_rows(tmp_path):
    """A file written before the rows became the table's key (a rowid table and an index) keeps working."""
    path, clock, limit = str(tmp_path / "x"), Clock(), per_minute(3, "key", "1")
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE entries (key TEXT NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, "
                   "expires_at REAL NOT NULL)")
        db.execute("CREATE INDEX entries_key_at ON entries (key, at, seq)")
        db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?)",
                       [(limit.key, seq, clock.now - 121 + seq * 60, clock.now - 61 + seq * 60) for seq in (1, 2)])
    windows = InstanceFile(path, clock)
    assert windows.take([limit]) == (True, [(1, clock.now - 1)], clock.now)
    assert windows.take([limit])[0] and not windows.take([limit])[0]
    assert rows(path) == 3


def test_rows_of_expired_entries_go(tmp_path):
    """A counted request deletes its keys' expired rows; the sweep those of keys nobody uses."""
    path, clock, busy = str(tmp_path / "x"), Clock(), per_second(10, "key", "busy")
    windows = InstanceFile(path, clock)
    windows.take([per_second(10, "key", "idle")])
    for _ in range(3):
        windows.take([busy])
        clock.now += 2
    assert rows(path) == 2                                    # the busy key's newest, and the idle one's
    clock.now += SWEEP_EVERY_S
    windows.take([busy])
    assert rows(path) == 1


def test_memory_forgets_keys_whose_entries_all_left():
    clock = Clock()
    windows = MemoryWindows(clock)
    windows.take([per_minute(10, "key", "idle")])
    clock.now += SWEEP_EVERY_S + 1
    windows.take([per_minute(10, "key", "busy")])
    assert list(windows._windows) == [per_minute(10, "key", "busy").key]


def _take_many(path, limits, times):
    windows = InstanceFile(path)
    return sum(windows.take(limits)[0] for _ in range(times))


def test_processes_racing_on_one_file_take_exactly_the_limit_in_every_window(tmp_path):
    """Four processes, 150 requests each, against a limit of 300 and a roomier one: exactly 300
    are counted, and the roomy window holds exactly those 300 (none from a refused request)."""
    path = str(tmp_path / "x")
    InstanceFile(path)
    tight, roomy = per_minute(300, "user", "1"), Limit.of(RateLimitItemPerHour(10_000), ("global",))
    with multiprocessing.get_context("fork").Pool(4) as pool:
        counted = pool.starmap(_take_many, [(path, [roomy, tight], 150)] * 4)
    assert sum(counted) == 300
    taken, looks, _ = InstanceFile(path).take([roomy])
    assert taken and looks[0][0] == 300


def queue_behind_the_lock(windows, count, take):
    """`count` threads, the nth calling `take(n)` on `windows`, all queued while the test holds the file's lock;
    returns them (started) once they all wait, and what each got (a result or the error it raised)."""
    got = {}

    def ask(n):
        try:
            got[n] = take(n)
        except Exception as exc:            # the error is what this caller sees
            got[n] = exc

    threads = [threading.Thread(target=ask, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while len(windows._asking) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(windows._asking) == count
    return threads, got


def test_requests_asking_at_once_share_one_transaction_and_are_counted_exactly(tmp_path):
    """Eight requests queue while the file is busy; whoever gets it next counts all eight, in the order
    they came, in one transaction: five are taken, three refused, and one BEGIN was written."""
    windows, limit = InstanceFile(str(tmp_path / "x")), per_minute(5, "key", "1")
    begun = []
    windows._db.set_trace_callback(lambda statement: statement.startswith("BEGIN") and begun.append(statement))
    with windows._lock:
        threads, got = queue_behind_the_lock(windows, 8, lambda n: windows.take([limit]))
    for thread in threads:
        thread.join(5)
    assert sorted(result[0] for result in got.values()) == [False] * 3 + [True] * 5
    assert sorted(result[1][0][0] for result in got.values() if result[0]) == [0, 1, 2, 3, 4]
    assert len(begun) == 1 and rows(tmp_path / "x") == 5


def test_a_transaction_that_fails_fails_only_its_own_caller_the_others_count_again(tmp_path, monkeypatch):
    """The first count of a shared transaction fails (say, the disk): it is rolled back, its caller sees
    the error, and the other requests of that transaction are counted afterwards, none lost or doubled."""
    windows, limit = InstanceFile(str(tmp_path / "x")), per_minute(10, "key", "1")
    real_take, calls = windows._take, []

    def failing_once(limits):
        calls.append(limits)
        if len(calls) == 2:                 # inside the shared transaction, after one count was made
            raise sqlite3.OperationalError("disk I/O error")
        return real_take(limits)

    monkeypatch.setattr(windows, "_take", failing_once)
    with windows._lock:
        threads, got = queue_behind_the_lock(windows, 3, lambda n: windows.take([limit]))
    for thread in threads:
        thread.join(5)
    errors = [result for result in got.values() if isinstance(result, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], sqlite3.OperationalError)
    assert sorted(result[0] for result in got.values() if not isinstance(result, Exception)) == [True, True]
    assert rows(tmp_path / "x") == 2


def test_one_users_full_window_refuses_none_of_anothers_in_the_same_transaction(tmp_path):
    """Two users' requests counted in one shared transaction: the first user's limit of one refuses
    their other three, and the second user, with room for five, has all four taken."""
    windows = InstanceFile(str(tmp_path / "x"))
    users = [per_minute(1, "user", "1"), per_minute(5, "user", "2")] * 4
    with windows._lock:
        threads, got = queue_behind_the_lock(windows, len(users), lambda n: windows.take([users[n]]))
    for thread in threads:
        thread.join(5)
    taken = {user: sorted(got[n][0] for n in got if users[n] is user) for user in users[:2]}
    assert taken == {users[0]: [False, False, False, True], users[1]: [True] * 4}
