"""Retention (SPEC 8): delete log rows older than the `[retention]` days, in small batches so that
no delete holds the write lock (SQLite) or a long transaction (PostgreSQL) while requests are served."""
from datetime import timedelta

import sqlalchemy as sa

from extensions import begin_write, db
from models.activity_log import ActivityLog
from models.credit import HELD, Reservation
from models.request_log import RequestLog
from models.stored_response import StoredResponse
from models.user import utcnow

BATCH = 5000


def expired(settings, now=None):
    """(table, condition) for each log past its retention; a log kept for ever (0 days) is left out."""
    now = now or utcnow()
    targets = ((RequestLog, settings.request_logs_days, ()),
               (ActivityLog, settings.activity_logs_days, ()),
               (Reservation, settings.reservations_days, (Reservation.status != HELD,)),
               (StoredResponse, settings.stored_responses_days, ()))
    return [(model, sa.and_(model.created_at < now - timedelta(days=days), *extra))
            for model, days, extra in targets if days > 0]


def count(settings, now=None):
    """How many rows `prune` would delete now, per table."""
    return {model.__tablename__: db.session.scalar(sa.select(sa.func.count()).select_from(model).where(condition))
            for model, condition in expired(settings, now)}


def prune(settings, now=None, batch=BATCH):
    """Delete every expired row, `batch` rows per transaction; returns how many went, per table."""
    deleted = {}
    for model, condition in expired(settings, now):
        oldest = sa.select(model.id).where(condition).limit(batch)
        total = 0
        while True:
            begin_write()
            gone = db.session.execute(sa.delete(model).where(model.id.in_(oldest.scalar_subquery()))).rowcount
            db.session.commit()
            total += gone
            if gone < batch:
                break
        deleted[model.__tablename__] = total
    return deleted
