"""The group commit's statements run on the driver's cursor (models.fastsql): they store what SQLAlchemy
would store, read back equal through the ORM, fail as SQLAlchemy's errors, and survive a lost connection."""
import time
from datetime import datetime

import pytest
import sqlalchemy as sa

from conftest import ON_POSTGRESQL, make_user
from extensions import db
from models import RequestLog, User, group_commit

LOGS, USERS = RequestLog.__table__, User.__table__
MOMENTS = [datetime(2026, 5, 1, 12, 30, 0), datetime(2026, 5, 1, 12, 30, 0, 123456)]    # whole second, and not


def log_row(request_id, created_at, **fields):
    return {"request_id": request_id, "user_id": None, "api_key_id": None, "endpoint": "chat",
            "requested_model": "m", "model": "m", "provider": "p", "stream": True, "status": 200, "error": None,
            "attempts": [{"provider": "p", "latency_ms": 1.5}], "prompt_tokens": 1, "completion_tokens": 2,
            "latency_ms": 3.25, "cache_read_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0, "cost": 7,
            "cost_parts": None, "overrun": 0, "created_at": created_at, **fields}


def stored(app, request_id):
    """The row's stored values as the database holds them (as text), not as SQLAlchemy reads them."""
    columns = [sa.cast(LOGS.c[name], sa.Text) for name in ("stream", "attempts", "cost_parts", "created_at")]
    with app.app_context():
        values = db.session.execute(sa.select(*columns).where(LOGS.c.request_id == request_id)).one()
        db.session.rollback()
        return tuple(values)


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_row_written_by_a_batch_is_stored_as_sqlalchemy_stores_it(app, moment):
    parts = {"input": 5, "output": 2}
    group_commit.run(app, lambda batch: batch.insert(LOGS, log_row("fast", moment, cost_parts=parts)))
    with app.app_context():
        db.session.execute(LOGS.insert(), log_row("core", moment, cost_parts=parts))
        db.session.commit()
    assert stored(app, "fast") == stored(app, "core")


@pytest.mark.parametrize("moment", MOMENTS)
def test_datetimes_json_and_booleans_written_by_a_batch_read_back_equal_through_the_orm(app, moment):
    group_commit.run(app, lambda batch: batch.insert(LOGS, log_row("r1", moment)))
    with app.app_context():
        row = db.session.scalars(sa.select(RequestLog).where(RequestLog.request_id == "r1")).one()
        assert (row.created_at, row.stream, row.attempts, row.cost_parts, row.latency_ms) == \
            (moment, True, [{"provider": "p", "latency_ms": 1.5}], None, 3.25)
        assert db.session.scalar(sa.select(sa.func.count()).where(RequestLog.created_at < moment)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).where(RequestLog.created_at <= moment)) == 1


def test_rows_come_back_by_column_name_and_updates_count_their_rows(app):
    user_id = make_user(app)
    grant = USERS.update().where(USERS.c.id == sa.bindparam("uid")).values(balance=USERS.c.balance + 5)
    read = sa.select(USERS.c.balance, USERS.c.username).where(USERS.c.id == sa.bindparam("uid"))

    def job(batch):
        changed = batch.execute(grant, {"uid": user_id}).rowcount, batch.execute(grant, {"uid": -1}).rowcount
        row = batch.execute(read, {"uid": user_id}).one()
        textual = batch.execute(sa.text("SELECT 2 AS two"), {}).one().two
        return changed, row.balance, row.username, batch.execute(read, {"uid": -1}).first(), textual
    assert group_commit.run(app, job) == ((1, 0), 5, "alice", None, 2)


def test_a_returned_column_is_read_as_sqlalchemy_reads_it_or_refused(app):
    """SQLite keeps datetimes and JSON as text that SQLAlchemy converts: such a read is refused there."""
    group_commit.run(app, lambda batch: batch.insert(LOGS, log_row("r1", MOMENTS[1])))
    read = sa.select(LOGS.c.created_at, LOGS.c.attempts).where(LOGS.c.request_id == "r1")
    with app.app_context():
        expected = tuple(db.session.execute(read).one())
        db.session.rollback()
    if ON_POSTGRESQL:
        assert group_commit.run(app, lambda batch: tuple(batch.execute(read, {}).one())) == expected
    else:
        with pytest.raises(ValueError, match="needs SQLAlchemy's conversion"):
            group_commit.run(app, lambda batch: batch.execute(read, {}))


def test_a_driver_error_in_a_statement_is_sqlalchemys_and_fails_only_its_job(app):
    make_user(app, "taken")
    rename = USERS.update().where(USERS.c.username == sa.bindparam("old")).values(username=sa.bindparam("new"))
    make_user(app, "bob")

    def collide(batch):
        batch.execute(rename, {"old": "bob", "new": "taken"})
    outcomes = []
    for job in (lambda batch: batch.insert(LOGS, log_row("kept", MOMENTS[0])), collide):
        try:
            outcomes.append(group_commit.run(app, job))
        except sa.exc.IntegrityError as exc:
            outcomes.append(type(exc.orig).__name__)
    assert outcomes[0] is None and outcomes[1] in ("IntegrityError", "UniqueViolation")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LOGS)) == 1
        assert db.session.scalar(sa.select(User.username).where(User.username == "bob")) == "bob"
    assert group_commit.run(app, lambda batch: "still writing") == "still writing"


def test_a_row_missing_a_column_with_a_python_default_is_refused_and_nothing_is_written(app):
    with pytest.raises(ValueError, match="Python-side default"):
        group_commit.run(app, lambda batch: batch.insert(USERS, {"username": "nodefaults", "password_hash": "x"}))
    with app.app_context():
        assert db.session.scalar(sa.select(User.id).where(User.username == "nodefaults")) is None


@pytest.mark.skipif(not ON_POSTGRESQL, reason="a server connection to lose: runs in the PostgreSQL pass")
def test_a_lone_job_is_committed_after_the_kept_connection_was_lost(app):
    """The committer keeps its connection between batches, without a ping: the batch that finds it dead
    fails, and its lone job is run again on a new connection."""
    backend_pid = sa.select(sa.func.pg_backend_pid())
    backend = group_commit.run(app, lambda batch: batch.execute(backend_pid, {}).one()[0])
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.pg_terminate_backend(backend))) is True
        db.session.rollback()
    assert group_commit.run(app, lambda batch: batch.execute(backend_pid, {}).one()[0]) != backend


@pytest.mark.skipif(not ON_POSTGRESQL, reason="a server connection to see: runs in the PostgreSQL pass")
def test_disposing_the_apps_pool_closes_the_committers_kept_connection(app):
    backend_pid = sa.select(sa.func.pg_backend_pid())
    backend = group_commit.run(app, lambda batch: batch.execute(backend_pid, {}).one()[0])
    with app.app_context():
        db.engine.dispose()
    assert group_commit.run(app, lambda batch: batch.execute(backend_pid, {}).one()[0]) != backend
    alive = sa.select(sa.func.count()).select_from(sa.text("pg_stat_activity")).where(sa.text(f"pid = {backend}"))
    deadline = time.monotonic() + 5
    with app.app_context():
        while db.session.scalar(alive) and time.monotonic() < deadline:
            db.session.rollback()
            time.sleep(0.05)
        assert db.session.scalar(alive) == 0
