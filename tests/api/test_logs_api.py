"""Seed 002's account API (SPEC 2.5): /api/logs with its filters and paging, a user confined to their
own rows and an admin to everyone's, /api/tasks, and /api/models/catalog measured from the log."""
import time
import uuid
from datetime import timedelta

import pytest

from conftest import make_key, make_user
from extensions import db
from gateway import pricing
from helpers import gateway_config
from models import ApiKey, RequestLog, credit
from models.user import utcnow

HELLO = [{"role": "user", "content": "hi"}]
MODELS = {"log-a": {"provider": "openai", "input_per_mtok": 1000.0, "output_per_mtok": 1000.0},
          "log-b": {"provider": "openai"}}


@pytest.fixture
def gateway(make_app, upstream):
    """Alice (keys `work` and `home`) and Bob (key `work`), users; Root, an admin."""
    app = make_app(gateway_config(upstream, MODELS))
    alice, bob, root = make_user(app, "alice"), make_user(app, "bob"), make_user(app, "root", role="admin")
    app.keys = {"alice": make_key(app, alice, "work"), "alice-home": make_key(app, alice, "home"),
                "bob": make_key(app, bob, "work"), "root": make_key(app, root, "ops")}
    app.ids = {"alice": alice, "bob": bob, "root": root}
    return app


def add_rows(app, user, key_name, count, model="log-a", status=200, age=timedelta(0)):
    """`count` request-log rows of `user` through their key `key_name`, `age` ago."""
    with app.app_context():
        key = db.session.scalar(db.select(ApiKey).where(ApiKey.user_id == app.ids[user], ApiKey.name == key_name))
        for _ in range(count):
            db.session.add(RequestLog(request_id=uuid.uuid4().hex, user_id=app.ids[user],
                                      api_key_id=key.id, endpoint="chat", requested_model=model,
                                      model=model if status < 400 else None, provider="openai", status=status,
                                      prompt_tokens=10, completion_tokens=5, latency_ms=1500.0,
                                      created_at=utcnow() - age))
        db.session.commit()


def logs(app, who, **params):
    response = app.test_client().get("/api/logs", query_string=params,
                                     headers={"Authorization": f"Bearer {app.keys[who]}"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_served_chat_is_listed_with_its_usage_and_cost_in_quota(gateway, upstream):
    with gateway.app_context():
        credit.grant(gateway.ids["alice"], 5 * pricing.MICRO_PER_USD)
        db.session.commit()
    chat = gateway.test_client().post("/v1/chat/completions", json={"model": "log-a", "messages": HELLO},
                                      headers={"Authorization": f"Bearer {gateway.keys['alice']}"})
    assert chat.status_code == 200
    page = logs(gateway, "alice")
    assert (page["success"], page["total"], page["page"], page["page_size"]) == (True, 1, 1, 100)
    row = page["data"][0]
    prompt, completion = upstream.usage
    assert {k: row[k] for k in ("type", "username", "token_name", "model_name", "status", "prompt_tokens",
                                "completion_tokens", "is_stream", "endpoint")} == {
        "type": 2, "username": "alice", "token_name": "work", "model_name": "log-a", "status": 200,
        "prompt_tokens": prompt, "completion_tokens": completion, "is_stream": False, "endpoint": "chat"}
    assert row["quota"] == pricing.to_quota(int(float(chat.headers["X-Credits-Charged"]) * pricing.MICRO_PER_USD)) > 0
    assert gateway.keys["alice"] not in str(page)


def test_a_user_sees_only_their_own_rows_whatever_they_pass(gateway):
    add_rows(gateway, "alice", "work", 2)
    add_rows(gateway, "bob", "work", 3)
    assert {r["username"] for r in logs(gateway, "alice")["data"]} == {"alice"}
    assert logs(gateway, "alice", username="bob")["total"] == 2           # ignored for a non-admin
    assert logs(gateway, "alice", token_name="work")["total"] == 2        # bob's key of that name is not hers
    assert logs(gateway, "bob")["total"] == 3


def test_an_admin_sees_everyone_and_filters_by_username(gateway):
    add_rows(gateway, "alice", "work", 2)
    add_rows(gateway, "bob", "work", 3)
    assert logs(gateway, "root")["total"] == 5
    assert {r["username"] for r in logs(gateway, "root", username="bob")["data"]} == {"bob"}
    assert logs(gateway, "root", username="bob")["total"] == 3
    assert logs(gateway, "root", username="nobody")["total"] == 0
    assert logs(gateway, "root", token_name="work")["total"] == 5


def test_filters_by_key_model_type_and_time(gateway):
    add_rows(gateway, "alice", "work", 2, model="log-a")
    add_rows(gateway, "alice", "home", 1, model="log-b")
    add_rows(gateway, "alice", "work", 1, model="log-b", status=502)
    add_rows(gateway, "alice", "work", 1, model="log-a", age=timedelta(days=3))
    assert logs(gateway, "alice", token_name="home")["total"] == 1
    assert logs(gateway, "alice", model_name="log-b")["total"] == 1            # the model that answered
    assert logs(gateway, "alice", type=2)["total"] == 4
    failed = logs(gateway, "alice", type=5)
    assert failed["total"] == 1 and failed["data"][0]["status"] == 502 and failed["data"][0]["model_name"] == "log-b"
    assert logs(gateway, "alice", type=1)["total"] == 0                         # top-ups are not request-log rows
    day_ago = int(time.time()) - 86400
    assert logs(gateway, "alice", start_timestamp=day_ago)["total"] == 4
    assert logs(gateway, "alice", end_timestamp=day_ago)["total"] == 1
    assert logs(gateway, "alice", start_timestamp=day_ago, end_timestamp=day_ago + 3600)["total"] == 0


def test_pages_are_newest_first_and_do_not_overlap(gateway):
    add_rows(gateway, "alice", "work", 7)
    first, third = logs(gateway, "alice", p=1, page_size=3), logs(gateway, "alice", p=3, page_size=3)
    assert first["total"] == third["total"] == 7
    ids = [r["id"] for r in first["data"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 3
    assert len(third["data"]) == 1 and third["data"][0]["id"] < min(ids)
    assert logs(gateway, "alice", p=4, page_size=3)["data"] == []


@pytest.mark.parametrize("params", [
    {"p": "0"}, {"p": "x"}, {"page_size": "0"}, {"page_size": "1001"}, {"type": "9"}, {"type": "two"},
    {"start_timestamp": "yesterday"}, {"end_timestamp": "-1"}, {"start_timestamp": "200", "end_timestamp": "100"},
    {"model_name": "m" * 201},
])
def test_bad_parameters_get_400_in_the_detail_shape(gateway, params):
    response = gateway.test_client().get("/api/logs", query_string=params,
                                         headers={"Authorization": f"Bearer {gateway.keys['alice']}"})
    assert response.status_code == 400
    body = response.get_json()
    assert set(body) == {"detail", "code", "error_type"} and body["code"] == 400
    assert body["error_type"] == "invalid_parameter"


def test_logs_and_tasks_need_credentials(gateway):
    client = gateway.test_client()
    for path in ("/api/logs", "/api/tasks", "/api/models/catalog"):
        response = client.get(path)
        assert response.status_code == 401 and set(response.get_json()) == {"detail", "code", "error_type"}


def test_tasks_are_an_honest_empty_list(gateway):
    client = gateway.test_client()
    headers = {"Authorization": f"Bearer {gateway.keys['alice']}"}
    assert client.get("/api/tasks?start_timestamp=100&end_timestamp=200", headers=headers).get_json() == {
        "success": True, "message": "", "data": []}
    assert client.get("/api/tasks?start_timestamp=300&end_timestamp=200", headers=headers).status_code == 400


def test_catalog_measures_uptime_and_times_from_the_last_day(gateway):
    add_rows(gateway, "alice", "work", 3, model="log-a")
    add_rows(gateway, "bob", "work", 1, model="log-a", status=502)
    add_rows(gateway, "bob", "work", 4, model="log-a", status=503, age=timedelta(days=2))   # outside the window
    with gateway.app_context():
        db.session.execute(db.update(RequestLog).where(RequestLog.status == 200)
                           .values(latency_ms=db.case((RequestLog.id == 1, 500.0), else_=2000.0)))
        db.session.commit()
    response = gateway.test_client().get("/api/models/catalog",
                                         headers={"Authorization": f"Bearer {gateway.keys['alice']}"})
    assert response.status_code == 200
    models = {m["model_name"]: m for m in response.get_json()["data"]}
    assert set(models) == {"log-a", "log-b"}
    a, b = models["log-a"], models["log-b"]
    assert (a["uptime"], a["requests_24h"]) == (0.75, 4)
    assert (a["avg_time_low"], a["avg_time_normal"], a["avg_time_high"]) == (0.5, 1.5, 2.0)
    assert (a["billing_type"], a["input_price"], a["output_price"], a["endpoint"]) == (
        "pay-per-token", 1000.0, 1000.0, "/v1/chat/completions")
    assert (b["uptime"], b["avg_time_normal"], b["requests_24h"], b["is_deprecation"]) == (1, None, 0, 0)


def test_catalog_lists_only_the_models_a_key_may_use(gateway):
    key = make_key(gateway, gateway.ids["alice"], "limited", model_limits=["log-b"])
    response = gateway.test_client().get("/api/models/catalog", headers={"Authorization": f"Bearer {key}"})
    assert [m["model_name"] for m in response.get_json()["data"]] == ["log-b"]
