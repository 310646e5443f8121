"""Waiting for another SQLite connection's lock without stalling a gevent worker.

SQLite's own busy handler sleeps in C, which under gevent stops every request of the worker, not
just the waiting one. So connections run with it off and a refusal ("database is locked") is
waited out here, with a patched, greenlet-friendly sleep that backs off a little each time.
"""
import sqlite3
import time

LOCK_WAIT_S = 5.0             # a writer holds the lock for well under a millisecond; this is a stuck one


def waiting(statement, timeout_s=LOCK_WAIT_S):
    """`statement()`, tried again while the database is locked, for at most `timeout_s` seconds.

    :raise sqlite3.OperationalError: any other error, or still locked after `timeout_s`.
    """
    deadline, pause = time.monotonic() + timeout_s, 0.0002
    while True:
        try:
            return statement()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.005)
