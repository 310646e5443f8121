"""Moving windows shared by the workers of one instance without Redis: rate-limit entries in a SQLite file.

One row per counted request: (key, seq, at, expires_at), `seq` numbering a key's rows 1, 2, 3…
in the order of `at`. A moving window is the rows of its key younger than the window, so its size
is the newest row's seq minus the oldest young row's, plus one: two index lookups, however large
the limit. A request's limits are counted in one write transaction (BEGIN IMMEDIATE, waited out
with a sleep gevent can switch away from): one statement looks at every window, and only when all
have room are the rows taken, in one more, so the workers of an instance share one exact count and
a request takes an entry in all of its windows or in none. That is five statements a request,
whatever its number of limits; the lock and the commit, most of the cost, are shared: the requests
of a worker that ask at once queue, and whoever finds the file free counts them all, one after the
other in the order they came, in one transaction.

Times are `time.time()`, never earlier than a key's newest row (so seq and at agree). Commits are
not synced to disk: after a crash of the machine a few requests may be forgotten, never wrongly
refused. The rows are the table's key (WITHOUT ROWID: one B-tree to write, not a table and an
index); a file made before keeps its rowid table and (key, at, seq) index, which the same
statements use. The file is separate from the health state file, whose readers re-read it after
every commit.
"""
import functools
import sqlite3
import threading
import time
from collections import deque

from gateway.sqlitelock import waiting

SWEEP_EVERY_S = 60.0          # rows of keys nobody uses any more are deleted this often (per worker)


class InstanceFile:
    """Exact moving windows on one SQLite file, for the workers of one instance."""

    def __init__(self, path, clock=time.time):
        self.clock = clock
        self._db = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        waiting(lambda: self._db.execute("PRAGMA journal_mode=WAL"))        # workers start together
        self._db.execute("PRAGMA synchronous=OFF")
        waiting(lambda: self._db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT NOT NULL, seq INTEGER NOT NULL, "
                                          "at REAL NOT NULL, expires_at REAL NOT NULL, PRIMARY KEY (key, at, seq)) "
                                          "WITHOUT ROWID"))
        self._lock = threading.Lock()
        self._asking = deque()          # [limits, result]: the takes queued for the next transaction
        self._swept_at = 0.0

    def take(self, limits):
        """Take an entry in the window of every limit (gateway.ratelimits.Limit), or in none when one is full.

        :return: (taken, looks, now): looks[i] is (entries in the window of limits[i] before this
            request, time of its oldest one or `now`), up to the refusing limit when not taken.
        """
        asked = [limits, None]
        self._asking.append(asked)
        with self._lock:
            if asked[1] is None:        # not counted by the one who held the lock before: count all queued
                time.sleep(0)           # let the requests that are ready to ask queue up: a bigger batch
                self._count_queued(asked)
        return asked[1]

    def _count_queued(self, mine):
        batch = [self._asking.popleft() for _ in range(len(self._asking))]
        try:
            waiting(lambda: self._db.execute("BEGIN IMMEDIATE"))
            results = [self._take(limits) for limits, _ in batch]
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._asking.extend(asked for asked in batch if asked is not mine)     # counted again by their callers
            raise
        for asked, result in zip(batch, results):
            asked[1] = result

    def _take(self, limits):
        now = self.clock()
        asked = [value for limit in limits for value in (limit.key, now - limit.expiry)]    # cutoffs: older is out
        rows = self._db.execute(_look(len(limits)), asked).fetchall()
        now = max([now] + [newest_at for _, newest_at, _, _ in rows if newest_at is not None])
        looks = []
        for limit, (newest, _, oldest, oldest_at) in zip(limits, rows):
            looks.append((newest - oldest + 1, oldest_at) if oldest is not None else (0, now))
            if looks[-1][0] >= limit.amount:
                return False, looks, now
        self._db.execute(_expire(len(limits)), asked)
        if now - self._swept_at >= SWEEP_EVERY_S:
            self._db.execute("DELETE FROM entries WHERE expires_at <= ?", (now,))
            self._swept_at = now
        self._db.executemany("INSERT INTO entries (key, seq, at, expires_at) VALUES (?, ?, ?, ?)",
                             [(limit.key, (newest or 0) + 1, now, now + limit.expiry)
                              for limit, (newest, _, _, _) in zip(limits, rows)])
        return True, looks, now


@functools.cache
def _look(count):
    """A statement giving, for `count` (key, cutoff) pairs in order: the key's newest row's seq and
    at, and its oldest row's after the cutoff (NULLs where there is none)."""
    asked = ", ".join(f"({i}, ?, ?)" for i in range(count))
    newest = "FROM entries WHERE key = asked.key ORDER BY at DESC, seq DESC LIMIT 1"
    oldest = "FROM entries WHERE key = asked.key AND at > asked.cutoff ORDER BY at, seq LIMIT 1"
    return (f"WITH asked(n, key, cutoff) AS (VALUES {asked}) SELECT (SELECT seq {newest}), (SELECT at {newest}), "
            f"(SELECT seq {oldest}), (SELECT at {oldest}) FROM asked ORDER BY n")


@functools.cache
def _expire(count):
    """A statement deleting the rows of `count` (key, cutoff) pairs at or before their cutoff."""
    return "DELETE FROM entries WHERE " + " OR ".join(["(key = ? AND at <= ?)"] * count)
