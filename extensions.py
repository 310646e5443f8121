"""Extension objects, created unbound and bound in create_app (avoids circular imports)."""
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from htmx_flask import Htmx
from sqlalchemy.orm import DeclarativeBase

from gateway.sqlitelock import waiting


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
login_manager = LoginManager()
htmx = Htmx()


def execute_core(statement, params):
    """Run a prebuilt Core statement in the session's transaction, on its connection directly.

    The ORM's per-statement work (execution options, ORM compile state, events) buys nothing for
    plain Core statements, and the request hot path runs several of them per request.
    """
    return db.session.connection().execute(statement, params)


SQLITE_BUSY_TIMEOUT_MS = 10_000
BUSY_HANDLER_OFF = "busy_handler_off"     # a pooled SQLite connection's info: its busy handler is off for good


def begin_write(connection=None):
    """Open the session's (or `connection`'s) transaction as a writer; on SQLite, wait for the write
    lock cooperatively.

    SQLite lets one connection write at a time, and its busy handler makes the others sleep in C:
    under gevent that stalls every request of the worker, not just the waiting one. So the write
    lock is taken up front (BEGIN IMMEDIATE) with the busy handler off, and a refusal is waited out
    by gateway.sqlitelock. A no-op inside a transaction that already writes, and
    on PostgreSQL, whose row locks wait on a socket gevent can switch away from. A connection that
    only ever writes this way (BUSY_HANDLER_OFF in its info: the group commit's) keeps the handler off.
    """
    connection = connection or db.session.connection()
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.driver_connection
    if raw.in_transaction:
        return
    if connection.info.get(BUSY_HANDLER_OFF):
        waiting(lambda: raw.execute("BEGIN IMMEDIATE"), SQLITE_BUSY_TIMEOUT_MS / 1000)
        return
    cursor = raw.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    try:
        waiting(lambda: cursor.execute("BEGIN IMMEDIATE"), SQLITE_BUSY_TIMEOUT_MS / 1000)
    finally:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()
