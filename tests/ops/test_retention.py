"""Retention: log rows past their `[retention]` days go (in batches), newer ones and live holds stay."""
from datetime import timedelta

import pytest
import sqlalchemy as sa

from conftest import make_user
from extensions import db
from gateway.config import ConfigError, RetentionSettings, parse
from models import ActivityLog, RequestLog, Reservation, retention
from models.stored_response import StoredResponse
from models.credit import HELD, RELEASED, SETTLED
from models.user import utcnow


def add_rows(app, user_id, age_days, count=3):
    """`count` rows of each log, `age_days` old; the reservations are settled, released and held."""
    created = utcnow() - timedelta(days=age_days)
    with app.app_context():
        for i in range(count):
            tag = f"{age_days}-{i}"
            db.session.add(RequestLog(request_id=f"r{tag}", user_id=user_id, endpoint="chat", requested_model="m",
                                      status=200, attempts=[], created_at=created))
            db.session.add(ActivityLog(user_id=user_id, action="ADD", provider_name="openai", description="x",
                                       created_at=created))
            db.session.add(Reservation(request_id=f"h{tag}", user_id=user_id, amount=1,
                                       status=(SETTLED, RELEASED, HELD)[i % 3], created_at=created))
            db.session.add(StoredResponse(id=f"resp_{tag}", user_id=user_id, model="m", status="completed",
                                          input_items=[], response={"output": []}, created_at=created))
        db.session.commit()


def remaining(app):
    with app.app_context():
        return {model.__tablename__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
                for model in (RequestLog, ActivityLog, Reservation, StoredResponse)}


def test_prune_deletes_only_rows_past_each_logs_retention_in_batches(app):
    user = make_user(app)
    add_rows(app, user, age_days=400)
    add_rows(app, user, age_days=30)
    add_rows(app, user, age_days=1)
    settings = RetentionSettings(request_logs_days=90, activity_logs_days=365, reservations_days=7,
                                 stored_responses_days=30)
    expired = {"request_logs": 3, "activity_logs": 3, "reservations": 4, "stored_responses": 6}
    with app.app_context():
        assert retention.count(settings) == expired
        assert remaining(app) == dict.fromkeys(expired, 9)                  # counting deletes nothing
        assert retention.prune(settings, batch=2) == expired
    assert remaining(app) == {"request_logs": 6, "activity_logs": 6, "reservations": 5, "stored_responses": 3}
    with app.app_context():
        held = db.session.scalars(sa.select(Reservation.request_id).where(Reservation.status == HELD)).all()
        assert sorted(held) == ["h1-2", "h30-2", "h400-2"]            # a live hold is never pruned, however old
        assert retention.prune(settings) == dict.fromkeys(expired, 0)


def test_zero_days_keeps_a_log_for_ever(app):
    add_rows(app, make_user(app), age_days=5000)
    with app.app_context():
        assert retention.prune(RetentionSettings(0, 0, 0, 0)) == {}
    assert remaining(app) == {"request_logs": 3, "activity_logs": 3, "reservations": 3, "stored_responses": 3}


def test_the_cli_prunes_with_the_configured_days_and_dry_run_changes_nothing(make_app):
    app = make_app({"retention": {"request_logs_days": 10, "activity_logs_days": 0, "reservations_days": 0,
                                  "stored_responses_days": 0}})
    add_rows(app, make_user(app), age_days=11)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["logs", "prune", "--dry-run"])
    assert result.exit_code == 0 and result.output.strip() == "would delete 3 request_logs"
    assert remaining(app)["request_logs"] == 3
    result = runner.invoke(args=["logs", "prune"])
    assert result.exit_code == 0 and result.output.strip() == "deleted 3 request_logs"
    assert remaining(app) == {"request_logs": 0, "activity_logs": 3, "reservations": 3, "stored_responses": 3}


@pytest.mark.parametrize("table, message", [
    ({"request_logs_days": -1}, "[retention] request_logs_days: must not be negative"),
    ({"request_logs_days": "90"}, "[retention] request_logs_days: must be int"),
    ({"keep_days": 3}, "[retention] keep_days: unknown setting"),
])
def test_a_bad_retention_setting_is_refused_at_start(table, message):
    with pytest.raises(ConfigError) as exc:
        parse({"retention": table}, {})
    assert str(exc.value).startswith(message)
