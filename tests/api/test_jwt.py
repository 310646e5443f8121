"""JWT bearer auth (SPEC 1 and 9): HS256 tokens signed with JWT_SECRET, `sub` a username or user id,
`exp` required; anything else is 401 in the family's own error shape, and nothing is charged."""
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import make_key, make_user
from extensions import db
from gateway import pricing
from helpers import gateway_config
from models import CreditTransaction, RequestLog, User, credit

SECRET = "jwt-secret-for-tests-only-0123456789"     # 36 bytes: HS256 wants 32 or more
CHAT = "/v1/chat/completions"
HELLO = {"model": "jwt-model", "messages": [{"role": "user", "content": "hi"}]}
PRICED = {"jwt-model": {"provider": "openai", "input_per_mtok": 1000.0, "output_per_mtok": 1000.0}}


def token(sub="alice", lifetime=300, key=SECRET, algorithm="HS256", **claims):
    payload = {"sub": sub, **claims}
    if lifetime is not None:
        payload["exp"] = int(time.time()) + lifetime
    return jwt.encode(payload, key, algorithm=algorithm)


def bearer(raw):
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def gateway(make_app, upstream):
    app = make_app(gateway_config(upstream, PRICED), JWT_SECRET=SECRET)
    user_id = make_user(app, "alice")
    with app.app_context():
        credit.grant(user_id, 5 * pricing.MICRO_PER_USD)
        db.session.commit()
    app.user_id = user_id
    return app


def test_a_valid_token_chats_billed_to_its_user_and_logged(gateway, upstream):
    response = gateway.test_client().post(CHAT, json=HELLO, headers=bearer(token()))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["choices"][0]["message"]["content"] == upstream.reply_text
    charged = float(response.headers["X-Credits-Charged"])
    assert charged > 0
    with gateway.app_context():
        log = db.session.scalars(db.select(RequestLog)).one()
        assert (log.user_id, log.api_key_id, log.status, log.model) == (gateway.user_id, None, 200, "jwt-model")
        charge = db.session.scalars(db.select(CreditTransaction).where(CreditTransaction.kind == "charge")).one()
        assert charge.user_id == gateway.user_id and pricing.to_credits(-charge.amount) == charged
        assert db.session.get(User, gateway.user_id).reserved == 0
    listed = gateway.test_client().get("/api/logs", headers=bearer(token())).get_json()["data"]
    assert [(r["username"], r["token_id"], r["token_name"]) for r in listed] == [("alice", None, "")]


def test_sub_may_be_the_user_id_as_text_or_number(gateway):
    client = gateway.test_client()
    for sub in (str(gateway.user_id), gateway.user_id):
        assert client.get("/billing/balance", headers=bearer(token(sub=sub))).get_json() == {
            "user_id": str(gateway.user_id), "balance": 5.0}


@pytest.mark.parametrize("make_token,code", [
    (lambda: token(lifetime=-10), "token_expired"),
    (lambda: token(lifetime=None), "invalid_token"),                               # no exp
    (lambda: token(key="another-secret-of-the-same-length!!"), "invalid_token"),   # wrong signature
    (lambda: token(sub="nobody"), "invalid_token"),                                # unknown user
    (lambda: token(sub="999999"), "invalid_token"),                                # unknown user id
    (lambda: jwt.encode({"exp": int(time.time()) + 300}, SECRET, algorithm="HS256"), "invalid_token"),   # no sub
    (lambda: token(key=SECRET * 2, algorithm="HS512"), "invalid_token"),
    (lambda: jwt.encode({"sub": "alice", "exp": int(time.time()) + 300}, None, algorithm="none"), "invalid_token"),
    (lambda: token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256"),
     "invalid_token"),
])
def test_bad_tokens_get_401_and_cost_nothing(gateway, upstream, make_token, code):
    raw = make_token()
    response = gateway.test_client().post(CHAT, json=HELLO, headers=bearer(raw))
    assert response.status_code == 401
    error = response.get_json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code
    assert raw not in response.get_data(as_text=True) and SECRET not in response.get_data(as_text=True)
    assert upstream.requests == []
    with gateway.app_context():
        assert db.session.scalar(db.select(db.func.count(CreditTransaction.id))
                                 .where(CreditTransaction.kind == "charge")) == 0


def test_the_alg_none_token_is_refused_even_with_a_matching_payload(gateway):
    """An unsigned token whose header claims HS256 but carries no signature is still 401."""
    header, payload, _ = token().split(".")
    response = gateway.test_client().get("/billing/balance", headers=bearer(f"{header}.{payload}."))
    assert response.status_code == 401


def test_each_family_answers_a_bad_token_in_its_own_shape(gateway):
    client = gateway.test_client()
    expired = bearer(token(lifetime=-10))
    messages = client.post("/v1/messages", headers=expired,
                           json={"model": "jwt-model", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
    assert messages.status_code == 401
    assert messages.get_json()["type"] == "error" and messages.get_json()["error"]["type"] == "authentication_error"
    detail = client.get("/api/user", headers=expired)
    assert detail.status_code == 401
    assert detail.get_json() == {"detail": "The token has expired.", "code": 401, "error_type": "token_expired"}


def test_a_disabled_users_token_gets_401(gateway):
    with gateway.app_context():
        db.session.get(User, gateway.user_id).disabled = True
        db.session.commit()
    assert gateway.test_client().get("/billing/balance", headers=bearer(token())).status_code == 401


def test_a_token_may_manage_its_users_keys(gateway):
    """A JWT caller has no key limits of its own, so the key-management routes let it through."""
    key = make_key(gateway, gateway.user_id, "scripted")
    client = gateway.test_client()
    listed = client.get("/api/keys", headers=bearer(token())).get_json()["data"]
    assert [k["name"] for k in listed] == ["scripted"]
    changed = client.put(f"/api/keys/{listed[0]['id']}/quota", headers=bearer(token()), json={"remain_quota": 500000})
    assert changed.status_code == 200 and changed.get_json()["data"]["remain_quota"] == 500000
    assert client.get("/billing/balance", headers=bearer(key)).status_code == 200


def test_the_users_rate_limit_counts_token_requests(make_app, upstream):
    """A token has no key limit, but its user's `[limits] user_per_minute` still applies."""
    app = make_app(gateway_config(upstream, ["jwt-model"], limits={"user_per_minute": 2, "key_per_minute": 1}),
                   JWT_SECRET=SECRET)
    make_user(app, "alice")
    client = app.test_client()
    statuses = [client.get("/billing/balance", headers=bearer(token())).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_without_a_secret_tokens_are_not_accepted(make_app, upstream):
    app = make_app(gateway_config(upstream, ["jwt-model"]))
    make_user(app, "alice")
    response = app.test_client().post(CHAT, json=HELLO, headers=bearer(token()))
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_api_key"
    assert upstream.requests == []
