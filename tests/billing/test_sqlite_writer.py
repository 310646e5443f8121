"""SQLite's write lock is waited for in Python (a greenlet-friendly sleep), never in SQLite's busy handler."""
import sqlite3
import threading
import time

import sqlalchemy as sa

from conftest import sqlite_only
from extensions import SQLITE_BUSY_TIMEOUT_MS, begin_write, db
from gateway import sqlitelock

pytestmark = sqlite_only


def test_a_writer_waits_for_the_write_lock_in_python_then_takes_it(app, monkeypatch):
    """While another connection holds the write lock, `begin_write` sleeps in Python (which gevent
    turns into a switch to other requests) until the lock is free, then holds it itself; the busy
    timeout used by every other statement is put back."""
    naps = []
    real_sleep = time.sleep
    monkeypatch.setattr(sqlitelock.time, "sleep", lambda seconds: naps.append(seconds) or real_sleep(seconds))
    path = app.config["SQLALCHEMY_DATABASE_URI"][len("sqlite:///"):]
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, other.execute, ["COMMIT"]).start()
    with app.app_context():
        started = time.monotonic()
        begin_write()
        assert time.monotonic() - started >= 0.25
        assert naps and max(naps) <= 0.005
        assert db.session.connection().connection.driver_connection.in_transaction
        assert db.session.execute(sa.text("PRAGMA busy_timeout")).scalar() == SQLITE_BUSY_TIMEOUT_MS
        db.session.rollback()
    other.close()


def test_the_group_commit_waits_for_the_write_lock_in_python_with_its_busy_handler_off_for_good(app, monkeypatch):
    """The committer's own connection never runs SQLite's busy handler (it is turned off once, not
    around every BEGIN): a batch facing another connection's write lock sleeps in Python, then commits."""
    naps = []
    real_sleep = time.sleep
    monkeypatch.setattr(sqlitelock.time, "sleep", lambda seconds: naps.append(seconds) or real_sleep(seconds))
    path = app.config["SQLALCHEMY_DATABASE_URI"][len("sqlite:///"):]
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, other.execute, ["COMMIT"]).start()
    committer = app.extensions["group_commit"]
    started = time.monotonic()
    busy = committer.run(lambda batch: batch.execute(sa.text("PRAGMA busy_timeout"), {}).first()[0])
    assert time.monotonic() - started >= 0.25
    assert naps and max(naps) <= 0.005
    assert busy == 0
    other.close()
