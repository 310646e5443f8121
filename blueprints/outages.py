"""A lost database fails closed: 503 in the route family's own error shape, never a 500 traceback.

Every request touches the database before any upstream call (the key lookup, then the credit
hold), so a dead database stops it there: nothing is served unbilled. Only the errors that mean
"the database cannot be reached" are mapped; an IntegrityError or a bad query stays a 500 (a bug).
"""
import time

import sqlalchemy as sa
from flask import current_app

from extensions import db
from gateway.errors import GatewayError

MESSAGE = "The gateway's database is unavailable; try again shortly."
WARN_EVERY_S = 60.0           # an outage under load would otherwise log a line per request
LOST = (sa.exc.OperationalError,    # cannot connect, connection dropped, server shutting down
        sa.exc.InterfaceError,      # the driver's connection is already closed
        sa.exc.TimeoutError)        # no pooled connection came free within the pool timeout


def init_app(app):
    for error in LOST:
        app.register_error_handler(error, database_unavailable)


def database_unavailable(exc):
    """Drop the session's dead connection and answer with the blueprint's own GatewayError handler.

    Pages (no such handler) get a plain 503.
    """
    _warn(exc)
    db.session.rollback()
    try:
        return current_app.handle_user_exception(GatewayError(503, MESSAGE, "server_error", "database_unavailable"))
    except GatewayError:
        return MESSAGE, 503


_warned_at = None


def _warn(exc):
    global _warned_at
    now = time.monotonic()
    if _warned_at is None or now - _warned_at >= WARN_EVERY_S:
        _warned_at = now
        current_app.logger.warning("database unavailable, answering 503 (logged once a minute): %s",
                                   str(exc).splitlines()[0])
