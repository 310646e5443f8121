"""No input gives a 500: deep, huge, surrogate-laden or wrongly typed bodies, huge amounts and unsendable keys
are refused with a 4xx in the route family's own error shape, and nothing is written."""
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from blueprints.api.account import MAX_QUOTA
from conftest import make_key, make_user
from extensions import db
from gateway import config, jsonbody, pricing
from gateway.errors import BadRequest
from helpers import gateway_config
from models import ActivityLog, ApiKey, CreditTransaction, RedemptionCode, RequestLog, User, UserProviderKey

sys.path.append(str(Path(__file__).parents[1] / "web"))    # the browser-session helpers live beside the web tests
from web_client import web  # noqa: E402,F401  (web is a fixture)

HELLO = [{"role": "user", "content": "hi"}]
TABLES = (User, ApiKey, CreditTransaction, UserProviderKey, RequestLog, ActivityLog, RedemptionCode)


# --- the app, and what "nothing changed" means -----------------------------------------------------
@pytest.fixture
def app(make_app, upstream):
    return make_app(gateway_config(upstream, ["m1"], keys=("operator-key",), retry={"max_attempts": 1}))


@pytest.fixture
def env(app, web):
    """A user with an API key and one stored provider key, plus a logged-in browser session of another user."""
    session = web("admin")                         # the first account is the admin
    user_id = make_user(app)
    raw = make_key(app, user_id)
    headers = {"Authorization": f"Bearer {raw}"}
    client = app.test_client()
    stored = client.post("/api/v1/provider-keys", json={"provider_name": "openai", "api_key": "sk-stored-key"},
                         headers=headers)
    assert stored.status_code == 201
    with app.app_context():
        key_id = db.session.scalar(sa.select(ApiKey.id).where(ApiKey.user_id == user_id))
    return Env(app, client, headers, session, user_id, key_id, stored.get_json()["id"])


@dataclass
class Env:
    app: object
    client: object
    headers: dict
    session: object
    user_id: int
    key_id: int
    provider_key: str


def snapshot(app):
    """Row counts of every table a request could write, and the values a refused request must not touch."""
    with app.app_context():
        counts = {m.__tablename__: db.session.scalar(sa.select(sa.func.count()).select_from(m)) for m in TABLES}
        money = db.session.execute(sa.select(User.id, User.balance, User.reserved)).all()
        keys = db.session.execute(sa.select(ApiKey.id, ApiKey.remain_quota, ApiKey.unlimited_quota, ApiKey.status)).all()
        own = db.session.execute(sa.select(UserProviderKey.id, UserProviderKey.name, UserProviderKey.ciphertext,
                                           UserProviderKey.is_selected, UserProviderKey.status)).all()
    return counts, [tuple(r) for r in money], [tuple(r) for r in keys], [tuple(r) for r in own]


# --- each route family's error shape -----------------------------------------------------------------
def openai_shape(body, status):
    return set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}


def anthropic_shape(body, status):
    return body.get("type") == "error" and set(body["error"]) == {"type", "message"}


def detail_shape(body, status):
    return set(body) == {"detail", "code", "error_type"} and body["code"] == status


def plain_shape(body, status):
    return set(body) == {"error"} and isinstance(body["error"], str)


def error_code(body):
    """The machine-readable code, wherever the family puts it (None where it has none)."""
    if "error_type" in body:
        return body["error_type"]
    return body["error"].get("code") if isinstance(body.get("error"), dict) else None


# --- the JSON routes ---------------------------------------------------------------------------------
def _text(v):
    return isinstance(v, str) and bool(v.strip())


def _never(v):
    return False


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    shape: object
    template: dict
    fields: dict = field(default_factory=dict)     # field -> "this value would be accepted" (mutations avoid it)
    session: bool = False                          # browser session + CSRF instead of an API key

    def send(self, env, data):
        path = self.path.format(key_id=env.key_id, provider_key=env.provider_key)
        if self.session:
            return env.session.post(path, data=data, htmx=False, headers={"Content-Type": "application/json"})
        return env.client.open(path, method=self.method, data=data, content_type="application/json",
                               headers=env.headers)


ROUTES = [
    Route("POST", "/v1/chat/completions", openai_shape, {"model": "m1", "messages": HELLO},
          {"model": _text, "messages": _never}),
    Route("POST", "/v1/embeddings", openai_shape, {"model": "m1", "input": "hi"},
          {"model": _text, "input": lambda v: isinstance(v, (str, list))}),
    Route("POST", "/v1/messages", anthropic_shape, {"model": "m1", "max_tokens": 5, "messages": HELLO},
          {"messages": _never, "max_tokens": lambda v: isinstance(v, int)}),
    Route("POST", "/api/v1/chat", plain_shape, {"model": "m1", "messages": HELLO}, {"model": _text, "messages": _never}),
    Route("POST", "/api/v1/chat/generate-text", detail_shape, {"message": "hi", "model": "m1"}, {"message": _text}),
    Route("POST", "/billing/redeem", detail_shape, {"code": "gw-no-such-code"}, {"code": _never}),
    Route("PUT", "/api/keys/{key_id}/quota", detail_shape, {"remain_quota": 5},
          {"remain_quota": lambda v: type(v) is int and 0 <= v <= MAX_QUOTA}),
    Route("POST", "/api/v1/provider-keys", detail_shape, {"provider_name": "openai", "api_key": "sk-new", "name": "n"},
          {"provider_name": lambda v: v == "openai", "api_key": lambda v: isinstance(v, str) and v.isascii()}),
    Route("PATCH", "/api/v1/provider-keys/{provider_key}", detail_shape, {"name": "renamed", "is_selected": True},
          {"name": _text, "is_selected": lambda v: isinstance(v, bool)}),
    Route("POST", "/api/keys", detail_shape, {"name": "laptop"}, {"name": lambda v: isinstance(v, str)}, session=True),
]


def refused(response, route):
    """A 4xx in the route's own shape (never a 500, never an HTML page)."""
    body = response.get_json(silent=True)
    assert 400 <= response.status_code < 500 and isinstance(body, dict), (response.status_code, response.data[:300])
    assert route.shape(body, response.status_code), body
    return body


def nested(depth, kind="list"):
    return ("[" * depth + "]" * depth) if kind == "list" else ('{"a":' * depth + "1" + "}" * depth)


# --- (a) each finding ----------------------------------------------------------------------------------
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_deep_json_is_refused_on_every_json_route(env, route):
    """JSON nested past 64 levels (and 50k-100k levels) is a 400 `invalid_json`, in every family's shape."""
    before = snapshot(env.app)
    for depth, kind in [(65, "list"), (999, "dict"), (50_000, "list"), (100_000, "dict")]:
        response = route.send(env, nested(depth, kind))
        body = refused(response, route)
        assert response.status_code == 400 and error_code(body) in ("invalid_json", None) and "64 levels" in str(body)
    assert snapshot(env.app) == before


def test_json_at_the_depth_limit_is_still_accepted():
    """64 levels parse (the limit is generous for every real body); the 65th is refused."""
    assert jsonbody.parse(nested(64).encode()) == json.loads(nested(64))
    with pytest.raises(BadRequest, match="deeper than 64"):
        jsonbody.parse(nested(65).encode())


@pytest.mark.parametrize("route", ROUTES[:5], ids=lambda r: r.path)
def test_lone_surrogate_in_a_chat_message_is_a_400(env, route):
    """`"\\ud800"` in a message (or in any object key) is refused before it can fail an encoder later."""
    name = next(f for f in ("messages", "message", "input") if f in route.template)
    in_value = {"messages": [{"role": "user", "content": "hi \ud800 there"}]} if name == "messages" else {name: "hi \udfff"}
    before = snapshot(env.app)
    for body in ({**route.template, **in_value}, {**route.template, "\ud800": 1}):
        response = route.send(env, json.dumps(body))
        assert response.status_code == 400 and "surrogate" in json.dumps(refused(response, route))
    assert snapshot(env.app) == before


def test_a_valid_surrogate_pair_is_an_ordinary_character():
    """Escaped pairs (emoji) are fine: only a lone half is refused."""
    assert jsonbody.parse(b'{"content": "\\ud83d\\ude00"}') == {"content": "\U0001F600"}
    for raw in (b'"\\udc00\\ud800"', b'["\\ud800"]', b'"\xed\xa0\x80"', '"\ud800"'.encode("utf-16", "surrogatepass")):
        with pytest.raises(BadRequest):
            jsonbody.parse(raw)


@pytest.mark.parametrize("raw", [b'{"n": 18446744073709551616, "m": [-9223372036854775809]}', b"1" * 400,
                                 b'{"max": 18446744073709551615, "f": 1e300, "g": -2.5e-324}'])
def test_integers_past_64_bits_and_large_floats_are_decoded_exactly(raw):
    """orjson reads an integer past 64 bits as a float: such a body is decoded again, exactly."""
    assert repr(jsonbody.parse(raw)) == repr(json.loads(raw))


@pytest.mark.parametrize("raw", ['{"a": "é"}'.encode("utf-16"), '["é"]'.encode("utf-32-le"), b'\xef\xbb\xbf{"a": 1}',
                                 b'{"a": 1, "a": [2.5, -0.0, 0.1, 1e-7, 123456789.123456789]}', b' {"a": null} \n'])
def test_a_body_orjson_refuses_or_reads_is_what_the_standard_library_reads(raw):
    """UTF-16/32 and a byte order mark (orjson refuses them) still decode; numbers and duplicate keys as before."""
    assert repr(jsonbody.parse(raw)) == repr(json.loads(raw))


@pytest.mark.parametrize("raw", [b"NaN", b"[Infinity]", b'{"t": -Infinity}', b"[1e999999]", b"9" * 5000, b"\xff"])
def test_non_finite_and_oversized_numbers_are_not_json(raw):
    with pytest.raises(BadRequest) as exc:
        jsonbody.parse(raw)
    assert exc.value.code == "invalid_json" and exc.value.status == 400


def test_remain_quota_out_of_range_is_a_400_and_the_key_is_unchanged(env):
    """2^63 and above (anything past MAX_QUOTA, negative, a boolean, a float) is refused; MAX_QUOTA itself is not."""
    before = snapshot(env.app)
    for value in [2**63, 2**63 - 1, 2**64 + 5, MAX_QUOTA + 1, -1, True, 1.5, "5", None]:
        response = env.client.put(f"/api/keys/{env.key_id}/quota", json={"remain_quota": value}, headers=env.headers)
        body = refused(response, ROUTES[6])
        assert response.status_code == 400 and body["error_type"] == "invalid_parameter" and "remain_quota" in body["detail"]
    assert snapshot(env.app) == before
    response = env.client.put(f"/api/keys/{env.key_id}/quota", json={"remain_quota": MAX_QUOTA}, headers=env.headers)
    assert response.status_code == 200 and response.get_json()["data"]["remain_quota"] == MAX_QUOTA


AMOUNTS = ["1e999999", "-1e999999", "nan", "inf", "-inf", "-0", "1e-9", "1e30", "sNaN", "1e9999999999999999999"]


def test_admin_grant_and_code_batch_of_an_absurd_amount_are_form_errors(env):
    """/admin/users/<id>/grant and /admin/codes answer 422 with a message; no ledger row, code or balance change."""
    before = snapshot(env.app)
    for amount in AMOUNTS:
        granted = env.session.post(f"/admin/users/{env.user_id}/grant", data={"amount": amount, "note": "x"})
        assert granted.status_code == 422 and "The amount must" in granted.get_data(as_text=True), amount
        batch = env.session.post("/admin/codes", data={"amount": amount, "count": "1"})
        assert batch.status_code == 422 and "amount per code" in batch.get_data(as_text=True), amount
    assert snapshot(env.app) == before


def test_cli_refuses_absurd_amounts_without_a_traceback(env):
    """`flask credits grant/codes --amount …` exits with a one-line error and writes nothing."""
    before = snapshot(env.app)
    runner = env.app.test_cli_runner()
    for command in ("grant", "codes"):
        for amount in ("1e999999", "nan", "inf", "-0", "1e-9", "1e30"):
            args = ["credits", command, "--amount", amount] + (["--user", "alice"] if command == "grant" else [])
            result = runner.invoke(args=args)
            assert result.exit_code != 0 and isinstance(result.exception, SystemExit), (args, result.output)
            assert "Error" in result.output and "Traceback" not in result.output
    assert snapshot(env.app) == before


@pytest.mark.parametrize("value", ["1e999999", "-1e999999", "1e30", "1000000000.000001", "nan", "inf", "sNaN"])
def test_from_credits_refuses_non_finite_and_out_of_range(value):
    with pytest.raises(ValueError):
        pricing.from_credits(value)


def test_from_credits_still_reads_small_and_bounded_amounts():
    assert [pricing.from_credits(v) for v in ("-0", "1e-9", "0.1", "1e9", "-1e9")] == \
        [0, 0, 100_000, 10**15, -10**15]


def test_provider_key_a_header_cannot_carry_is_refused_on_save(env):
    """Create and replace answer 400 naming `api_key`; the /provider-keys page answers 422; nothing is stored."""
    before = snapshot(env.app)
    for secret in ("ключ", "sk-line\nbreak", "sk-\x00nul", "sk-tab\tkey", "sk-\x85c1", "🔑"):
        created = env.client.post("/api/v1/provider-keys", json={"provider_name": "openai", "api_key": secret},
                                  headers=env.headers)
        replaced = env.client.patch(f"/api/v1/provider-keys/{env.provider_key}", json={"api_key": secret},
                                    headers=env.headers)
        for response in (created, replaced):
            body = refused(response, ROUTES[7])
            assert response.status_code == 400 and "'api_key'" in body["detail"], secret
        page = env.session.post("/provider-keys", data={"provider_name": "openai", "api_key": secret, "name": "k"})
        assert page.status_code == 422 and "api_key" in page.get_data(as_text=True), secret
    assert snapshot(env.app) == before


def test_a_non_latin1_key_in_the_request_header_is_a_400(env, upstream):
    """X-Openai-API-Key: ключ (possible from a test client, not over real HTTP) is refused, not a 500."""
    before = snapshot(env.app)
    response = env.client.post("/v1/chat/completions", json={"model": "m1", "messages": HELLO},
                               headers={**env.headers, "X-Openai-API-Key": "ключ"})
    assert response.status_code == 400 and response.get_json()["error"]["param"] == "X-Openai-API-Key"
    assert upstream.requests == []
    counts, money, keys, own = snapshot(env.app)
    assert (money, own) == before[1:2] + before[3:] and counts["credit_transactions"] == before[0]["credit_transactions"]


def test_a_stored_key_saved_before_the_check_fails_cleanly_at_call_time(env, upstream):
    """A "ключ" key already in the database: chat fails over to the operator key and the Test button
    reports the failure; neither is a 500."""
    with env.app.app_context():
        row = db.session.scalar(sa.select(UserProviderKey))
        row.ciphertext = env.app.extensions["vault"].encrypt("ключ")
        db.session.commit()
    chat = env.client.post("/v1/chat/completions", json={"model": "m1", "messages": HELLO}, headers=env.headers)
    assert chat.status_code == 200 and [r.key for r in upstream.requests] == ["operator-key"]
    owner = type(env.session)(env.app.test_client())
    owner.login("alice", "correct-horse")
    tested = owner.post(f"/provider-keys/{env.provider_key}/test")
    assert tested.status_code == 200 and "Failed (auth" in tested.get_data(as_text=True)


@pytest.mark.parametrize("secret", ["ключ", "sk-key\n", "sk-\x7fdel"])
def test_operator_key_a_header_cannot_carry_fails_at_start(secret):
    """An operator key from the environment (or the file) that no header can carry is a ConfigError naming it."""
    spec = {"providers": {"openai": {"type": "openai", "api_keys": ["env:OPENAI_KEY", "sk-fine"]}}}
    with pytest.raises(config.ConfigError, match=r"\[providers.openai\] api_keys\[0\] \(env:OPENAI_KEY\)") as exc:
        config.parse(spec, {"OPENAI_KEY": secret})
    assert secret.strip() not in str(exc.value)
    with pytest.raises(config.ConfigError, match=r"api_keys\[0\]: the key has characters"):
        config.parse({"providers": {"openai": {"type": "openai", "api_keys": [secret]}}}, {})


# --- (b) random bodies on every JSON route -------------------------------------------------------------
EXAMPLES_PER_ROUTE = 30
WRONG_VALUES = [None, True, False, 0, -1, 2**63, 2**200, 1.5, 1e308, "", "x", "ключ", "y" * 100_000, [], [1], [None],
                {}, {"a": 1}, [0] * 10_000]


def random_body(rng, route):
    """One body the route must refuse: deep, huge, surrogate-laden, wrongly typed, or not JSON at all."""
    kind = rng.choice(["deep", "huge", "surrogate", "wrong_type", "garbage"])
    body = json.loads(json.dumps(route.template))
    if kind == "deep":
        depth = rng.choice([65, 200, 999, 1001, rng.randint(65, 100_000)])
        inner = nested(depth, rng.choice(["list", "dict"]))
        if rng.random() < 0.3:
            inner = inner[: rng.randint(1, len(inner))]                  # truncated as well
        return _with_raw(rng, body, inner)
    if kind == "huge":
        return _with_raw(rng, body, rng.choice(["1e999999", "-1e400", "NaN", "Infinity", "-Infinity", "9" * 5000]))
    if kind == "surrogate":
        lone = chr(rng.randint(0xD800, 0xDFFF))
        target = _random_container(rng, body)
        if isinstance(target, dict) and rng.random() < 0.5:
            target[lone + "k"] = "v"
        elif isinstance(target, dict):
            target[rng.choice(list(target) or ["x"])] = "text " + lone
        else:
            target.append(lone)
        raw = json.dumps(body)              # ensure_ascii writes the lone half as \udxxx
        return raw.encode() if rng.random() < 0.8 else raw.encode("utf-8", "surrogatepass")
    if kind == "wrong_type":
        name = rng.choice(list(route.fields))
        body[name] = rng.choice([v for v in WRONG_VALUES if not route.fields[name](v)])
        return json.dumps(body).encode()
    return rng.choice([b"", b"null", b"[]", b'"text"', b"123", b"{", b'{"a":}', bytes(rng.randbytes(64)),
                       b"\xef\xbb\xbf[]", "[]".encode("utf-16")])


def _random_container(rng, value):
    containers = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (dict, list)):
            containers.append(item)
            stack.extend(item.values() if isinstance(item, dict) else item)
    return rng.choice(containers)


def _with_raw(rng, body, raw):
    """The body with `raw` (a JSON fragment) as a random field's value, or as the whole body."""
    if rng.random() < 0.2:
        return raw.encode()
    marker = "\u0000MARKER\u0000"
    body[rng.choice(list(body) + ["extra"])] = marker
    return json.dumps(body).replace(json.dumps(marker), raw).encode()


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_random_bad_bodies_never_give_a_500_nor_change_a_row(env, route):
    """A seeded generator (reproducible: the seed is the route) feeds each route bodies it must refuse."""
    rng = random.Random(f"{route.method} {route.path}")
    before = snapshot(env.app)
    for _ in range(EXAMPLES_PER_ROUTE):
        data = random_body(rng, route)
        response = route.send(env, data)
        assert response.status_code != 500, data[:200]
        refused(response, route)
    assert snapshot(env.app) == before
