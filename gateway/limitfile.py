"""Rate-limit entries shared by the workers of one instance without Redis: a `limits` storage on a SQLite file.

One row per counted request: (key, seq, at, expires_at), `seq` numbering a key's rows 1, 2, 3…
in the order of `at`. A moving window is the rows of its key younger than the window, so its size
is the newest row's seq minus the oldest young row's, plus one: two index lookups, however large
the limit. Taking an entry looks and inserts under SQLite's write lock (BEGIN IMMEDIATE, waited
out with a sleep gevent can switch away from), so the workers of an instance share one exact
count. Times are `time.time()`, the clock limits' own storages use (never earlier than a key's
newest row, so seq and at agree). Commits are not synced to disk: after a crash of the machine a
few requests may be forgotten, never wrongly refused. The file is separate from the health state
file, whose readers re-read it after every commit.
"""
import sqlite3
import threading
import time

from limits.storage import MovingWindowSupport, Storage

from gateway.sqlitelock import waiting

SWEEP_EVERY_S = 60.0          # rows of keys nobody uses any more are deleted this often (per worker)


class InstanceFileStorage(Storage, MovingWindowSupport):
    """A limits storage for the moving window (and, for completeness, fixed windows) on one SQLite file."""

    def __init__(self, path, clock=time.time):
        super().__init__()
        self.path, self.clock = path, clock
        self._db = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        waiting(lambda: self._db.execute("PRAGMA journal_mode=WAL"))        # workers start together
        self._db.execute("PRAGMA synchronous=OFF")
        waiting(lambda: self._db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT NOT NULL, seq INTEGER NOT NULL, "
                                          "at REAL NOT NULL, expires_at REAL NOT NULL)"))
        waiting(lambda: self._db.execute("CREATE INDEX IF NOT EXISTS entries_key_at ON entries (key, at, seq)"))
        self._lock = threading.Lock()
        self._swept_at = 0.0

    @property
    def base_exceptions(self):
        return sqlite3.Error

    def acquire_entry(self, key, limit, expiry, amount=1):
        """Take `amount` entries in the window of `key` if no more than `limit` would then be in it."""
        if amount > limit:
            return False

        def take():
            now, newest = self._newest(key)
            self._db.execute("DELETE FROM entries WHERE key = ? AND at <= ?", (key, now - expiry))
            if self._count(key, now - expiry, newest) + amount > limit:
                return False
            self._append(key, newest, now, now + expiry, amount)
            return True
        return self._writing(take)

    def get_moving_window(self, key, limit, expiry):
        """(time of the oldest entry in the window, entries in the window); (now, 0) for an empty one."""
        now = self.clock()

        def look():
            newest = self._db.execute("SELECT seq FROM entries WHERE key = ? ORDER BY at DESC, seq DESC LIMIT 1",
                                      (key,)).fetchone()
            oldest = self._oldest(key, now - expiry)
            return (oldest[1], newest[0] - oldest[0] + 1) if oldest else (now, 0)
        return waiting(look)

    def incr(self, key, expiry, amount=1):
        """A fixed window's counter: the window ends `expiry` seconds after its first entry."""
        def add():
            now, newest = self._newest(key)
            ends = self._db.execute("SELECT max(expires_at) FROM entries WHERE key = ? AND expires_at > ?",
                                    (key, now)).fetchone()[0] or now + expiry
            self._append(key, newest, now, ends, amount)
            return self._db.execute("SELECT count(*) FROM entries WHERE key = ? AND expires_at > ?",
                                    (key, now)).fetchone()[0]
        return self._writing(add)

    def get(self, key):
        return waiting(lambda: self._db.execute("SELECT count(*) FROM entries WHERE key = ? AND expires_at > ?",
                                                 (key, self.clock())).fetchone()[0])

    def get_expiry(self, key):
        now = self.clock()
        return waiting(lambda: self._db.execute("SELECT max(expires_at) FROM entries WHERE key = ? AND expires_at > ?",
                                                 (key, now)).fetchone()[0]) or now

    def check(self):
        try:
            return waiting(lambda: self._db.execute("SELECT 1").fetchone()) == (1,)
        except sqlite3.Error:
            return False

    def reset(self):
        return self._writing(lambda: self._db.execute("DELETE FROM entries").rowcount)

    def clear(self, key):
        self._writing(lambda: self._db.execute("DELETE FROM entries WHERE key = ?", (key,)))

    def _newest(self, key):
        """(now, seq of the key's newest row or 0), inside a write transaction: now is never before that row."""
        row = self._db.execute("SELECT seq, at FROM entries WHERE key = ? ORDER BY at DESC, seq DESC LIMIT 1",
                               (key,)).fetchone()
        return (max(self.clock(), row[1]), row[0]) if row else (self.clock(), 0)

    def _oldest(self, key, after):
        """(seq, at) of the key's oldest row younger than `after`, or None."""
        return self._db.execute("SELECT seq, at FROM entries WHERE key = ? AND at > ? ORDER BY at, seq LIMIT 1",
                                (key, after)).fetchone()

    def _count(self, key, after, newest):
        oldest = self._oldest(key, after)
        return newest - oldest[0] + 1 if oldest else 0

    def _append(self, key, newest, at, expires_at, amount):
        self._db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?)",
                             [(key, newest + i, at, expires_at) for i in range(1, amount + 1)])

    def _writing(self, change):
        """`change()` in one write transaction; now and then expired rows of every key go too."""
        with self._lock:
            waiting(lambda: self._db.execute("BEGIN IMMEDIATE"))
            try:
                now = self.clock()
                if now - self._swept_at >= SWEEP_EVERY_S:
                    self._db.execute("DELETE FROM entries WHERE expires_at <= ?", (now,))
                    self._swept_at = now
                result = change()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return result
