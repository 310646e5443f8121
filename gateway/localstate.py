"""Health state shared by the workers of one instance without Redis: a small SQLite file.

`FileBreakers` and `FileKeyHealth` keep the rules and the public API of `gateway.health`; each
worker keeps the state in memory and re-reads the file only after another worker committed a
change (`PRAGMA data_version`). Every commit rewrites the header of the WAL index (the `-shm`
file, shared memory), so a check first compares that header's 48 bytes with what it saw last: a
healthy request's checks cost a `pread` each, not a pragma (measured under load: 14 -> 1 µs). A
change runs under SQLite's write lock on freshly read state and is written back before the lock
is let go, so, as with Redis, one half-open probe goes out in all.
Monotonic time is one clock for every process of a machine, so the entries keep `time.monotonic`.
"""
import copy
import json
import os
import sqlite3
import threading
import time
import weakref

from gateway.health import CLOSED, Breakers, KeyHealth, own_circuit
from gateway.sqlitelock import waiting

BAD_KEY_S = 86_400.0          # a key out "until fixed" returns after a day: a restart no longer clears it
WAL_INDEX_HEADER_BYTES = 48   # the first copy of SQLite's WalIndexHdr (sqlite.org/walformat.html)


class LocalState:
    """The state file of one instance (beside its SQLite database, or in instance/)."""

    degraded = False          # a local file is never "lost" the way a Redis server is
    scope = "every worker of this instance"

    def __init__(self, path):
        self.path = path

    def breakers(self, settings, clock=time.monotonic):
        return FileBreakers(settings, _Table(self.path, "circuits", _encode_circuit, _decode_circuit), clock)

    def key_health(self, clock=time.monotonic):
        return FileKeyHealth(_Table(self.path, "keys_out", list, tuple), clock)


class FileBreakers(Breakers):
    """Breakers whose state every worker of the instance shares."""

    def __init__(self, settings, table, clock=time.monotonic):
        super().__init__(settings, clock)
        self._table = table.bind(self._state)

    def allow(self, name, caller=None):
        if self._table.read(lambda: not self._entries(name, caller)):       # all closed: nothing to take
            return True
        return self._table.change(lambda: Breakers.allow(self, name, caller))

    def would_allow(self, name, caller=None):
        return self._table.read(lambda: Breakers.would_allow(self, name, caller))

    def success(self, name, caller=None):
        if self._table.read(lambda: self._clean(name, caller)):
            return
        self._table.change(lambda: Breakers.success(self, name, caller))

    def failure(self, name, caller=None):
        self._table.change(lambda: Breakers.failure(self, name, caller))

    def snapshot(self):
        return self._table.read(lambda: Breakers.snapshot(self))

    def _clean(self, name, caller):
        entry = self._state.get(name)
        shared_clean = entry is None or (entry["state"] == CLOSED and not entry["failures"])
        return shared_clean and (caller is None or own_circuit(name, caller) not in self._state)


class FileKeyHealth(KeyHealth):
    """Keys out of rotation, the same for every worker of the instance."""

    def __init__(self, table, clock=time.monotonic):
        super().__init__(clock)
        self._table = table.bind(self._out)

    def usable(self, scope, model_id=None):
        return scope is None or self._table.read(lambda: KeyHealth.usable(self, scope, model_id))

    def mark_bad(self, scope, reason):
        self.cool_down(scope, BAD_KEY_S, reason)

    def cool_down(self, scope, seconds, reason, model_id=None):
        self._table.change(lambda: KeyHealth.cool_down(self, scope, seconds, reason, model_id))

    def restore(self, scope):
        self._table.change(lambda: KeyHealth.restore(self, scope))

    def snapshot(self):
        return self._table.read(lambda: KeyHealth.snapshot(self))


class _Table:
    """One table of JSON entries in the state file, mirrored in a worker's dict."""

    def __init__(self, path, name, encode, decode):
        self.name, self.encode, self.decode = name, encode, decode
        self._shm_path, self._shm, self._header = path + "-shm", None, None
        self._db = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        waiting(lambda: self._db.execute("PRAGMA journal_mode=WAL"))        # workers start together
        waiting(lambda: self._db.execute(f"CREATE TABLE IF NOT EXISTS {name} (name TEXT PRIMARY KEY, entry TEXT NOT NULL)"))
        self._lock = threading.RLock()
        self._version = None
        self._state = None

    def bind(self, state):
        self._state = state
        return self

    def read(self, look):
        """`look()` on the state as every worker last left it."""
        with self._lock:
            self._refresh()
            return look()

    def change(self, act):
        """`act()` under the file's write lock on fresh state; what it changed is written back."""
        with self._lock:
            self._begin()
            try:
                self._refresh()
                before = copy.deepcopy(self._state)
                result = act()
                self._write(before)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._version = self._header = None         # read everything again next time
                raise
            # `_version` stays the one read under the write lock: this connection's own commit does not
            # change its data_version, and reading it again now could take in another worker's commit
            # made since ours, whose change this state has not read (its update would then be lost).
            return result

    def _refresh(self):
        header = self._wal_header()             # read first: a commit after it changes it for the next look
        if header is not None and header == self._header:
            return
        version = waiting(lambda: self._db.execute("PRAGMA data_version").fetchone()[0])
        if version != self._version:
            rows = waiting(lambda: self._db.execute(f"SELECT name, entry FROM {self.name}").fetchall())
            self._state.clear()
            self._state.update((name, self.decode(json.loads(entry))) for name, entry in rows)
            self._version = version
        self._header = header

    def _wal_header(self):
        """The WAL index's header, which every commit rewrites; None while there is no `-shm` file.

        Read with `pread` from a descriptor of our own (never mapped: a file cut short under a map
        would kill the worker). The file stays the same while this table's connection is open, and
        the table keeps it open for as long as it lives.
        """
        if self._shm is None:
            try:
                self._shm = os.open(self._shm_path, os.O_RDONLY)
            except OSError:
                return None
            weakref.finalize(self, os.close, self._shm)
        return os.pread(self._shm, WAL_INDEX_HEADER_BYTES, 0)

    def _write(self, before):
        gone = [(name,) for name in before.keys() - self._state.keys()]
        changed = [(name, json.dumps(self.encode(entry))) for name, entry in self._state.items()
                   if before.get(name) != entry]
        if gone:
            self._db.executemany(f"DELETE FROM {self.name} WHERE name = ?", gone)
        if changed:
            self._db.executemany(f"INSERT OR REPLACE INTO {self.name} (name, entry) VALUES (?, ?)", changed)

    def _begin(self):
        waiting(lambda: self._db.execute("BEGIN IMMEDIATE"))


def _encode_circuit(entry):
    return {**entry, "callers": list(entry["callers"])}


def _decode_circuit(entry):
    return {**entry, "callers": set(entry["callers"])}
