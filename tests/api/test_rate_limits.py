"""Rate limits (SPEC section 6, RELIABILITY D7): per key, user, global and address, answered before
any upstream call, hold or ledger row, with X-RateLimit-* on every limited answer and Retry-After on 429.
The /keys page's field and login throttling are in tests/web/test_web_rate_limits.py."""
import logging
import time

import pytest
import sqlalchemy as sa
from limits import RateLimitItemPerSecond

from conftest import make_key, make_user
from extensions import db
from helpers import gateway_config
from models import ApiKey, CreditTransaction, RequestLog, Reservation, credit
from servers import free_port

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hi"}]
PRICED = {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}


def limited_app(make_app, upstream, **limits):
    """A gateway with one priced model, the given [limits] (the rest off), and a user with credit."""
    app = make_app(gateway_config(upstream, {"m1": {"provider": "openai", **PRICED}}, limits=limits))
    user_id = make_user(app)
    with app.app_context():
        credit.grant(user_id, 100_000_000)
        db.session.commit()
    return app, user_id


def chat(client, key, **headers):
    return client.post(CHAT, json={"model": "m1", "messages": HELLO},
                       headers={"Authorization": f"Bearer {key}", **headers})


def limit_headers(response):
    return tuple(int(response.headers[f"X-RateLimit-{name}"]) for name in ("Limit", "Remaining", "Reset"))


def counted(app):
    """(charges in the ledger, reservations ever made, request log rows)."""
    with app.app_context():
        return (db.session.scalar(sa.select(sa.func.count()).where(CreditTransaction.kind == "charge")),
                db.session.scalar(sa.select(sa.func.count()).select_from(Reservation)),
                db.session.scalar(sa.select(sa.func.count()).select_from(RequestLog)))


def test_a_keys_own_rpm_lets_n_through_then_429_without_upstream_call_or_charge(make_app, upstream):
    """rpm 3: three answers with Remaining 2, 1, 0; then 429 with Retry-After ≥ 1 and Remaining 0,
    and the refused requests reach no upstream and leave no hold, ledger row or log row."""
    app, user_id = limited_app(make_app, upstream)
    key = make_key(app, user_id, rpm=3)
    client = app.test_client()
    answers = [chat(client, key) for _ in range(3)]
    assert [r.status_code for r in answers] == [200] * 3
    assert [limit_headers(r)[:2] for r in answers] == [(3, 2), (3, 1), (3, 0)]
    assert all(1 <= limit_headers(r)[2] <= 60 for r in answers)
    before = counted(app)
    assert before == (3, 3, 3) and len(upstream.requests) == 3

    for _ in range(3):
        refused = chat(client, key)
        assert refused.status_code == 429
        error = refused.get_json()["error"]
        assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
        assert "3 per 1 minute" in error["message"]
        retry_after = int(refused.headers["Retry-After"])
        assert 1 <= retry_after <= 60
        assert limit_headers(refused) == (3, 0, retry_after)
    assert len(upstream.requests) == 3 and counted(app) == before


def test_client_sent_headers_cannot_raise_the_limit(make_app, upstream):
    """X-RateLimit-*, Retry-After or a forwarded address from the client change nothing."""
    app, user_id = limited_app(make_app, upstream)
    key = make_key(app, user_id, rpm=2)
    client = app.test_client()
    forged = {"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "999", "X-RateLimit-Reset": "0",
              "Retry-After": "0", "X-Forwarded-For": "198.51.100.7", "X-Real-IP": "198.51.100.8"}
    statuses = [chat(client, key, **forged).status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    assert limit_headers(chat(client, key, **forged))[:2] == (2, 0)


def test_the_window_moves_on(make_app, upstream, monkeypatch):
    """Once the oldest request leaves the window, one more fits (windows shrunk to a second here)."""
    from gateway import ratelimits

    monkeypatch.setattr(ratelimits, "PER_MINUTE", RateLimitItemPerSecond)
    app, user_id = limited_app(make_app, upstream)
    key = make_key(app, user_id, rpm=2)
    client = app.test_client()
    assert [chat(client, key).status_code for _ in range(3)] == [200, 200, 429]
    time.sleep(1.1)
    again = chat(client, key)
    assert again.status_code == 200 and limit_headers(again)[:2] == (2, 1)


def test_the_users_limit_spans_their_keys_and_spares_other_users(make_app, upstream):
    app, alice = limited_app(make_app, upstream, user_per_minute=3)
    first, second = make_key(app, alice, "one"), make_key(app, alice, "two")
    bob = make_key(app, make_user(app, "bob"))
    client = app.test_client()
    assert [chat(client, k).status_code for k in (first, second, first)] == [200, 200, 200]
    refused = chat(client, second)
    assert refused.status_code == 429
    assert "your account's limit is 3 per 1 minute" in refused.get_json()["error"]["message"]
    assert chat(client, bob).status_code != 429          # (402: bob has no credit; the limit let him through)


def test_the_key_limit_is_checked_before_the_users(make_app, upstream):
    """The tighter own limit refuses first, and a refused request takes nothing from the user's window."""
    app, user_id = limited_app(make_app, upstream, user_per_minute=5)
    capped, other = make_key(app, user_id, "capped", rpm=1), make_key(app, user_id, "other")
    client = app.test_client()
    assert chat(client, capped).status_code == 200
    assert all(chat(client, capped).status_code == 429 for _ in range(5))
    statuses = [chat(client, other).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]           # 5 in all: the refused ones were not counted


def test_the_global_limit_counts_every_user(make_app, upstream):
    app, alice = limited_app(make_app, upstream, global_per_hour=3)
    bob = make_user(app, "bob")
    with app.app_context():
        credit.grant(bob, 100_000_000)
        db.session.commit()
    keys = [make_key(app, alice), make_key(app, bob)]
    client = app.test_client()
    assert [chat(client, keys[i % 2]).status_code for i in range(3)] == [200] * 3
    refused = chat(client, keys[1])
    assert refused.status_code == 429
    assert "the gateway's limit is 3 per 1 hour" in refused.get_json()["error"]["message"]
    assert 60 < int(refused.headers["Retry-After"]) <= 3600


def test_default_key_per_minute_applies_to_keys_without_their_own(make_app, upstream):
    app, user_id = limited_app(make_app, upstream, key_per_minute=1)
    plain, own = make_key(app, user_id, "plain"), make_key(app, user_id, "own", rpm=2)
    client = app.test_client()
    assert [chat(client, plain).status_code for _ in range(2)] == [200, 429]
    assert [chat(client, own).status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize("method,path,body", [
    ("post", "/v1/messages", {"model": "m1", "max_tokens": 5, "messages": HELLO}),
    ("post", "/api/v1/chat", {"model": "m1", "messages": HELLO}),
    ("get", "/api/user", None),
    ("get", "/v1/models", None),
    ("post", "/v1/embeddings", {"model": "m1", "input": "hi"}),
])
def test_every_api_family_answers_429_with_retry_after(make_app, upstream, method, path, body):
    app, user_id = limited_app(make_app, upstream)
    key = make_key(app, user_id, rpm=1)
    client = app.test_client()
    send = getattr(client, method)
    headers = {"Authorization": f"Bearer {key}"}
    first = send(path, json=body, headers=headers) if body else send(path, headers=headers)
    assert first.status_code != 429 and limit_headers(first)[:2] == (1, 0)
    refused = send(path, json=body, headers=headers) if body else send(path, headers=headers)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1 and limit_headers(refused)[1] == 0


def test_unlimited_routes_carry_no_rate_limit_headers(make_app, upstream):
    app, user_id = limited_app(make_app, upstream)          # every limit off
    client = app.test_client()
    for response in (chat(client, make_key(app, user_id)), client.get("/health"), client.get("/health/live")):
        assert "X-RateLimit-Limit" not in response.headers


def test_health_is_limited_per_address_but_live_and_ready_never(make_app, upstream):
    app, _ = limited_app(make_app, upstream, ip_per_minute=2)
    client = app.test_client()
    first = client.get("/health")
    assert first.status_code == 200 and limit_headers(first)[:2] == (2, 1)
    assert client.get("/health").status_code == 200
    refused = client.get("/health")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert client.get("/health", environ_base={"REMOTE_ADDR": "192.0.2.9"}).status_code == 200
    for _ in range(5):
        for path in ("/health/live", "/ready"):
            response = client.get(path)
            assert response.status_code == 200 and "X-RateLimit-Limit" not in response.headers


def test_health_names_the_storage(make_app, upstream):
    app, _ = limited_app(make_app, upstream)
    assert app.test_client().get("/health").get_json()["rate_limit_storage"] == "instance file"
    per_worker = make_app(gateway_config(upstream, ["m1"]), HEALTH_STATE_FILE="")
    assert per_worker.test_client().get("/health").get_json()["rate_limit_storage"] == "memory"


def test_apps_on_one_instance_file_share_one_count(make_app, upstream):
    """Two apps on one database (as two workers of an instance) count in the same file: 3, not 6."""
    config = gateway_config(upstream, {"m1": {"provider": "openai"}})
    one, two = make_app(config), make_app(config)
    key = make_key(one, make_user(one), rpm=3)
    clients = [one.test_client(), two.test_client()]
    statuses = [chat(clients[i % 2], key).status_code for i in range(6)]
    assert statuses == [200, 200, 200, 429, 429, 429]


def test_lost_redis_never_fails_a_request(make_app, upstream, caplog):
    """Redis unreachable: the limit is counted in the instance file instead, with one warning."""
    app, user_id = limited_app(make_app, upstream)
    gone = make_app(gateway_config(upstream, {"m1": {"provider": "openai", **PRICED}}),
                    REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    key = make_key(app, user_id, rpm=2)
    client = gone.test_client()
    with caplog.at_level(logging.WARNING, logger="gateway.ratelimits"):
        assert [chat(client, key).status_code for _ in range(3)] == [200, 200, 429]
    assert len([r for r in caplog.records if r.name == "gateway.ratelimits"]) == 1
    assert client.get("/health").get_json()["rate_limit_storage"] == "instance file"


def test_one_redis_is_one_limit_for_two_instances(make_app, upstream, redis_proc):
    """Two apps (as two instances, each with its own instance file) on one Redis: one count."""
    config = gateway_config(upstream, {"m1": {"provider": "openai"}})
    one = make_app(config, REDIS_URL=redis_proc.url)
    two = make_app(config, REDIS_URL=redis_proc.url, HEALTH_STATE_FILE="")
    key = make_key(one, make_user(one), rpm=3)
    clients = [one.test_client(), two.test_client()]
    assert [chat(clients[i % 2], key).status_code for i in range(5)] == [200, 200, 200, 429, 429]
    assert one.test_client().get("/health").get_json()["rate_limit_storage"] == "redis"


def test_keys_create_rpm_on_the_command_line(make_app, upstream):
    app, user_id = limited_app(make_app, upstream)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["keys", "create", "--user", "alice", "--rpm", "7"])
    assert result.exit_code == 0, result.output
    raw = result.output.strip().splitlines()[-1]
    with app.app_context():
        assert db.session.scalar(sa.select(ApiKey.rpm).order_by(ApiKey.id.desc()).limit(1)) == 7
    listed = app.test_client().get("/api/keys", headers={"Authorization": f"Bearer {raw}"}).get_json()["data"]
    assert [k["rpm"] for k in listed] == [7]
    assert runner.invoke(args=["keys", "create", "--user", "alice", "--rpm", "0"]).exit_code != 0

