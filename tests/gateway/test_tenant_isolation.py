"""One user can never take the service away from another: two users through the real router under
gunicorn (2 gevent workers) against the fake upstream. User A's failing traffic (a failing model,
timeouts, a model the operator key may not use, a bad header key) leaves user B's requests to
healthy models untouched, and B's own key is never silently replaced."""
import threading
from dataclasses import dataclass

import pytest
import requests

from conftest import make_key, make_user, served_gateway
from extensions import db
from fake_upstream import Fault
from gateway import config as gateway_config
from gateway.providers.gigachat import GigaChatAdapter
from gateway.providers.base import Target
from helpers import gateway_config as config_for, served_toml
from servers import gunicorn_server

CHAT = "/v1/chat/completions"
A_FLOOD = 12                 # more than failure_threshold × workers: every worker sees A fail repeatedly


@dataclass
class TwoUsers:
    a: dict
    b: dict
    env: dict


@pytest.fixture
def two_users(tmp_path, upstream):
    """A gateway (four free models on one provider with one operator key), users A and B."""
    settings = """
[routing]
request_timeout_s = 1.5
ttft_timeout_s = 1.0
connect_timeout_s = 1.0
[retry]
max_attempts = 1
[circuit_breaker]
failure_threshold = 2
recovery_timeout = 60
"""
    models = """
[models.good]
provider = "openai"
[models.bad]
provider = "openai"
[models.slow]
provider = "openai"
[models.forbidden]
provider = "openai"
"""
    app, env = served_gateway(tmp_path, served_toml(upstream, settings, models=models))
    a = {"Authorization": f"Bearer {make_key(app, make_user(app, 'alice'))}"}
    b = {"Authorization": f"Bearer {make_key(app, make_user(app, 'bob'))}"}
    with app.app_context():
        db.engine.dispose()
    return TwoUsers(a, b, env)


def ask(base, headers, model, **extra_headers):
    """One request on a fresh connection (so gunicorn spreads them over its workers)."""
    return requests.post(base + CHAT, headers={**headers, **extra_headers}, timeout=10,
                         json={"model": model, "messages": [{"role": "user", "content": "hi"}]})


def calls_to(upstream, model):
    return sum(1 for r in upstream.requests if r.model == model)


def flood(base, headers, model, count=A_FLOOD):
    """`count` requests at once, as a hostile user would send them."""
    statuses = []
    threads = [threading.Thread(target=lambda: statuses.append(ask(base, headers, model).status_code))
               for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    return statuses


def test_a_user_hammering_a_failing_model_cannot_open_circuits_others_depend_on(two_users, upstream):
    """A's 503s open A's own circuit (A is then skipped without upstream calls), never the key's:
    B's requests to a healthy model on the same operator key all succeed, and B's own first
    request to the failing model still reaches it, since one user alone cannot open the shared circuit."""
    upstream.script(Fault.status(503, "model overloaded"), model="bad")
    with gunicorn_server(two_users.env) as base:
        a_statuses = [ask(base, two_users.a, "bad").status_code for _ in range(A_FLOOD)]
        assert set(a_statuses) <= {502, 503}
        assert calls_to(upstream, "bad") <= 2 * 2          # threshold × workers: then A's own circuit skips
        assert [ask(base, two_users.b, "good").status_code for _ in range(6)] == [200] * 6
        before = calls_to(upstream, "bad")
        assert ask(base, two_users.b, "bad").status_code == 502
        assert calls_to(upstream, "bad") == before + 1


def test_timeouts_of_one_user_do_not_close_the_key_for_everyone(two_users, upstream):
    """Requests that run into the deadline count against that model, not the key: B's healthy model
    answers, and B's request to the slow model is a 504 after the deadline, not an instant 503."""
    upstream.script(Fault.slow(5), model="slow")
    with gunicorn_server(two_users.env) as base:
        assert set(flood(base, two_users.a, "slow", 6)) <= {503, 504}
        assert [ask(base, two_users.b, "good").status_code for _ in range(6)] == [200] * 6
        response = ask(base, two_users.b, "slow")
        assert response.status_code == 504 and response.elapsed.total_seconds() >= 1.0


def test_a_403_for_one_model_does_not_take_the_key_out_for_others(two_users, upstream):
    """A 403 names a model the operator key may not use: the key stays in rotation for every other
    model and every other user."""
    upstream.script(Fault.status(403, "this key may not use model forbidden"), model="forbidden")
    with gunicorn_server(two_users.env) as base:
        assert all(status >= 400 for status in flood(base, two_users.a, "forbidden", 6))
        assert [ask(base, two_users.b, "good").status_code for _ in range(6)] == [200] * 6
        assert all(r.key == "key-a" for r in upstream.requests if r.model == "good")


def test_a_bad_header_key_never_disables_another_users_header_key(two_users, upstream):
    """A's invalid X-OpenAI-API-Key is A's answer (401, no other key tried); B's valid one keeps
    serving B, and B's request is never quietly served with the operator's key."""
    upstream.script(Fault.status(401, "invalid api key"), key="bad-header-key")
    with gunicorn_server(two_users.env) as base:
        for _ in range(6):
            response = ask(base, two_users.a, "good", **{"X-OpenAI-API-Key": "bad-header-key"})
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "provider_key_rejected"
        assert {r.key for r in upstream.requests} == {"bad-header-key"}      # never replaced by key-a
        for _ in range(6):
            assert ask(base, two_users.b, "good", **{"X-OpenAI-API-Key": "good-header-key"}).status_code == 200
            assert upstream.requests[-1].key == "good-header-key"


def test_a_rate_limited_header_key_is_the_answer_with_its_retry_after(make_app, upstream):
    """A 429 on the caller's own key is answered as a 429 with the upstream's Retry-After; the
    operator's key is not tried in its place."""
    app = make_app(config_for(upstream, ["m1"], keys=("operator-key",)))
    headers = {"Authorization": f"Bearer {make_key(app, make_user(app))}", "X-OpenAI-API-Key": "my-own-key"}
    upstream.script(Fault.status(429, "slow down", retry_after=7), key="my-own-key")
    response = app.test_client().post(CHAT, headers=headers,
                                      json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert response.get_json()["error"]["code"] == "provider_key_rate_limited"
    assert [r.key for r in upstream.requests] == ["my-own-key"]


def test_a_new_key_never_inherits_a_deleted_keys_health(make_app, upstream):
    """A deleted key's database id may be reused for the next user's key (SQLite reuses it); the new
    key starts healthy (health is named by owner, secret and endpoint, never by a recycled id)."""
    app = make_app(config_for(upstream, ["m1"], keys=("operator-key",)))
    client = app.test_client()
    alice = {"Authorization": f"Bearer {make_key(app, make_user(app, 'alice'))}"}
    bob = {"Authorization": f"Bearer {make_key(app, make_user(app, 'bob'))}"}
    body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}
    upstream.script(Fault.status(401, "invalid api key"), key="dead-key")
    created = client.post("/api/v1/provider-keys", headers=alice,
                          json={"provider_name": "openai", "api_key": "dead-key", "name": "old"}).get_json()
    assert client.post(CHAT, json=body, headers=alice).status_code == 200         # failed over to the operator's
    assert client.delete(f"/api/v1/provider-keys/{created['id']}", headers=alice).status_code == 204
    reused = client.post("/api/v1/provider-keys", headers=bob,
                         json={"provider_name": "openai", "api_key": "fresh-key", "name": "new"}).get_json()
    with app.app_context():
        dialect = db.engine.dialect.name
    if dialect == "sqlite":     # SQLite hands the highest id out again; PostgreSQL's sequence never does
        assert reused["id"] == created["id"]                                       # the id came back
    assert client.post(CHAT, json=body, headers=bob).status_code == 200
    assert upstream.requests[-1].key == "fresh-key"


def test_gigachat_tokens_are_cached_per_key_never_per_id(upstream):
    """Two keys that share an id (a recycled one) each get their own token exchange and token."""
    settings = gateway_config.parse(config_for(upstream, ["GigaChat"], family="gigachat", keys=()), {})
    provider, model = settings.providers["gigachat"], settings.models["GigaChat"]
    adapter = GigaChatAdapter()
    body = {"model": "GigaChat", "messages": [{"role": "user", "content": "hi"}]}
    for secret in ("first-owner-key", "second-owner-key"):
        key = gateway_config.ProviderKey("pk_1", secret)
        adapter.complete(Target(provider, model, key), body, (1, 5))
    exchanges = [r for r in upstream.requests if r.endpoint == "oauth"]
    assert [r.key for r in exchanges] == ["first-owner-key", "second-owner-key"]
    chats = [r.key for r in upstream.requests if r.endpoint == "chat"]
    assert chats[0] != chats[1]
