"""The account, key, billing and seed-003 credit APIs: shapes, paging, ownership, redemption."""
import threading

import pytest

from conftest import make_key, make_user
from extensions import db
from fake_upstream import Fault
from helpers import gateway_config
from ledger import MICRO, PRICED, money
from models import ApiKey, RedemptionCode, User, UserProviderKey, credit


@pytest.fixture
def setup(make_app, upstream):
    app = make_app(gateway_config(upstream, {"m1": {"provider": "openai", **PRICED}}, keys=("key-a",)))
    alice, bob = make_user(app), make_user(app, "bob")
    with app.app_context():
        credit.grant(alice, 10 * MICRO, description="welcome")
        db.session.commit()
    return app, alice, bob


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def test_balance_and_transactions_paging(setup):
    """Balance in credits; transactions newest first, limit ≤ 100, offset and total."""
    app, alice, _ = setup
    key = make_key(app, alice)
    client = app.test_client()
    for _ in range(3):
        assert client.post("/v1/chat/completions", headers=auth(key),
                           json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
    balance = client.get("/billing/balance", headers=auth(key)).get_json()
    assert balance == {"user_id": str(alice), "balance": money(app, alice)[0] / MICRO}
    page = client.get("/billing/transactions?limit=2&offset=1", headers=auth(key)).get_json()
    assert (page["limit"], page["offset"], page["total"]) == (2, 1, 4)
    assert [t["amount"] < 0 for t in page["transactions"]] == [True, True]
    last = client.get("/billing/transactions?limit=1&offset=3", headers=auth(key)).get_json()["transactions"][0]
    assert (last["amount"], last["balance_after"], last["description"]) == (10.0, 10.0, "welcome")
    for bad in ("limit=101", "limit=0", "offset=-1", "limit=x"):
        response = client.get(f"/billing/transactions?{bad}", headers=auth(key))
        assert response.status_code == 400 and response.get_json()["code"] == 400
    assert client.get("/billing/balance").status_code == 401


def test_user_and_keys_api_in_quota_units(setup):
    """GET /api/user and /api/keys speak seed 002's quota units; keyword filters; keys are masked."""
    app, alice, _ = setup
    key = make_key(app, alice, name="prod")
    make_key(app, alice, name="staging")
    client = app.test_client()
    user = client.get("/api/user", headers=auth(key)).get_json()
    assert (user["username"], user["quota"], user["used_quota"]) == ("alice", 10 * 500_000, 0)
    keys = client.get("/api/keys?keyword=prod", headers=auth(key)).get_json()["data"]
    assert [k["name"] for k in keys] == ["prod"]
    assert keys[0]["key"].startswith("sk-") and key not in str(keys) and keys[0]["expired_time"] == -1


def test_quota_update_and_revoke_are_owner_scoped(setup):
    """PUT quota limits the key (402 key_quota afterwards); another user's key id is 404; DELETE revokes.
    The capped key itself may no longer manage keys: its owner's other, unlimited key does."""
    app, alice, bob = setup
    key = make_key(app, alice)
    manager = make_key(app, alice, "manager")
    bob_key = make_key(app, bob)
    client = app.test_client()
    with app.app_context():
        key_id = db.session.scalar(db.select(ApiKey.id).where(ApiKey.user_id == alice))
    response = client.put(f"/api/keys/{key_id}/quota", headers=auth(key), json={"remain_quota": 1})
    assert response.status_code == 200 and response.get_json()["data"]["unlimited_quota"] is False
    refused = client.post("/v1/chat/completions", headers=auth(key),
                          json={"model": "m1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
    assert refused.status_code == 402 and refused.get_json()["error"]["limit_source"] == "key_quota"
    assert client.put(f"/api/keys/{key_id}/quota", headers=auth(key), json={"remain_quota": 9}).status_code == 403
    assert client.put(f"/api/keys/{key_id}/quota", headers=auth(manager), json={"remain_quota": -5}).status_code == 400
    assert client.delete(f"/api/keys/{key_id}", headers=auth(bob_key)).status_code == 404
    assert client.put(f"/api/keys/{key_id}/quota", headers=auth(bob_key), json={"remain_quota": 9}).status_code == 404
    assert client.delete(f"/api/keys/{key_id}", headers=auth(manager)).get_json()["success"] is True
    assert client.get("/api/user", headers=auth(key)).status_code == 401


def test_redemption_codes_redeem_once_even_concurrently(setup):
    """A package code adds its credits once; 10 concurrent redemptions of one code: exactly one succeeds."""
    app, alice, bob = setup
    result = app.test_cli_runner().invoke(args=["credits", "codes", "--package", "25", "--count", "2"])
    first, second = result.output.split()
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(RedemptionCode.id)).where(RedemptionCode.code_hash == first)) == 0
    keys = {alice: make_key(app, alice), bob: make_key(app, bob)}
    client = app.test_client()
    answer = client.post("/billing/redeem", headers=auth(keys[bob]), json={"code": first}).get_json()
    assert (answer["credits_added"], answer["balance"]) == (27.5, 27.5)
    again = client.post("/billing/redeem", headers=auth(keys[alice]), json={"code": first})
    assert again.status_code == 400 and again.get_json()["error_type"] == "code_not_redeemable"

    barrier, outcomes = threading.Barrier(10), []

    def redeem(user_id):
        with app.test_client() as own:
            barrier.wait()
            outcomes.append(own.post("/billing/redeem", headers=auth(keys[user_id]), json={"code": second}).status_code)

    threads = [threading.Thread(target=redeem, args=(alice if i % 2 else bob,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == [200] + [400] * 9
    total = sum(money(app, user)[0] for user in (alice, bob))
    assert total == (10 + 27.5 * 2) * MICRO
    for user in (alice, bob):
        balance, _, ledger_sum, _ = money(app, user)
        assert balance == ledger_sum


def test_seed_003_chat_api_shapes_and_flat_price(setup, upstream):
    """POST /api/v1/chat costs 1 credit (2 with batch=1) and answers in seed 003's shapes."""
    app, alice, _ = setup
    key = make_key(app, alice)
    client = app.test_client()
    body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}
    answer = client.post("/api/v1/chat", headers=auth(key), json=body).get_json()
    assert (answer["credits_charged"], answer["credits_remaining"], answer["batch_request"]) == (1.0, 9.0, False)
    assert upstream.requests[0].body["max_tokens"] == 150
    batch = client.post("/api/v1/chat?batch=1", headers=auth(key), json=body).get_json()
    assert (batch["credits_charged"], batch["batch_request"]) == (2.0, True)
    assert client.post("/api/v1/chat", headers=auth("sk-" + "x" * 40), json=body).get_json() == {"error": "Invalid API key"}
    missing = client.post("/api/v1/chat", headers=auth(key), json={"model": "m1"})
    assert missing.status_code == 400 and "messages" in missing.get_json()["error"]
    unknown = client.post("/api/v1/chat", headers=auth(key), json={**body, "model": "nope"})
    assert (unknown.status_code, unknown.get_json()) == (404, {"error": "Model 'nope' not found"})
    upstream.script(Fault.status(500))
    assert client.post("/api/v1/chat", headers=auth(key), json=body).status_code == 502
    assert money(app, alice)[0] == 7 * MICRO


def test_seed_003_chat_api_402_shape(make_app, upstream):
    """Out of credit: seed 003's exact 402 body (plus which limit refused), no upstream call."""
    app = make_app(gateway_config(upstream, ["m1"], keys=("key-a",)))
    key = make_key(app, make_user(app))
    response = app.test_client().post("/api/v1/chat", headers=auth(key),
                                      json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 402
    assert response.get_json() == {"error": "Insufficient credits. Required: 1, Available: 0",
                                   "credits_required": 1, "credits_available": 0, "limit_source": "user_balance"}
    assert upstream.requests == []


def test_models_catalog_api(setup):
    """GET /api/models lists what the key may call, with prices."""
    app, alice, _ = setup
    key = make_key(app, alice)
    models = app.test_client().get("/api/models", headers=auth(key)).get_json()["models"]
    assert [(m["id"], m["input_per_mtok"]) for m in models] == [("m1", 1000.0)]


def test_fields_an_endpoint_does_not_take_are_ignored(setup):
    """No body can move a key to another user, raise a role or add credit: unknown fields
    (`user_id`, `role`, `balance`, `status`…) are ignored by every writing endpoint."""
    app, alice, bob = setup
    make_key(app, alice, "capped")
    key = make_key(app, alice)
    client = app.test_client()
    with app.app_context():
        key_id = db.session.scalar(db.select(ApiKey.id).where(ApiKey.user_id == alice, ApiKey.name == "capped"))
    extra = {"user_id": bob, "role": "admin", "balance": 10 ** 12, "status": "invalid", "used_quota": 0}
    assert client.put(f"/api/keys/{key_id}/quota", headers=auth(key),
                      json={"remain_quota": 7, **extra}).status_code == 200
    created = client.post("/api/v1/provider-keys", headers=auth(key),
                          json={"provider_name": "openai", "api_key": "sk-x-1234", "name": "k", **extra})
    assert created.status_code == 201
    provider_key = created.get_json()["id"]
    assert client.patch(f"/api/v1/provider-keys/{provider_key}", headers=auth(key),
                        json={"name": "renamed", **extra}).status_code == 200
    with app.app_context():
        assert db.session.get(ApiKey, key_id).user_id == alice
        assert {u.id: (u.role, u.balance) for u in db.session.scalars(db.select(User))} == {
            alice: ("user", 10 * MICRO), bob: ("user", 0)}
        stored = db.session.scalars(db.select(UserProviderKey)).one()
        assert (stored.user_id, stored.name, stored.status) == (alice, "renamed", "active")
