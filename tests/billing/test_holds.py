"""The hold is a true upper bound of the cost: what the upstream may produce is what was held, an
upstream that overshoots is charged the hold and logged as an overrun, and every error releases
its hold at once (no waiting for the sweeper)."""
import math

import pytest
import sqlalchemy as sa

from conftest import make_key, make_user
from extensions import db
from fake_upstream import Fault
from helpers import gateway_config, sse_data
from ledger import MICRO, PRICED, charges, held_reservations, key_quota, money
from models import ApiKey, RequestLog, credit

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hi"}]
DEFAULT_LIMIT = 4096


def priced_gateway(make_app, upstream, credits=100, **kw):
    app = make_app(gateway_config(upstream, {"m1": {"provider": "openai", **PRICED}}, keys=("key-a",), **kw))
    user_id = make_user(app)
    with app.app_context():
        credit.grant(user_id, credits * MICRO)
        db.session.commit()
    return app, user_id


def overruns(app):
    with app.app_context():
        return db.session.scalars(sa.select(RequestLog.overrun).order_by(RequestLog.id)).all()


def test_the_completion_limit_held_is_the_one_sent_upstream(make_app, upstream):
    """A request without max_tokens holds the default limit and tells the upstream exactly that."""
    app, user_id = priced_gateway(make_app, upstream)
    headers = {"Authorization": f"Bearer {make_key(app, user_id)}"}
    assert app.test_client().post(CHAT, json={"model": "m1", "messages": HELLO}, headers=headers).status_code == 200
    assert upstream.requests[-1].body["max_completion_tokens"] == DEFAULT_LIMIT
    assert app.test_client().post(CHAT, json={"model": "m1", "messages": HELLO, "max_tokens": 9},
                                  headers=headers).status_code == 200
    sent = upstream.requests[-1].body
    assert sent["max_tokens"] == 9 and "max_completion_tokens" not in sent      # the client's own limit, untouched


def test_an_upstream_that_overshoots_is_charged_the_hold_and_logged(make_app, upstream):
    """Usage beyond the hold (an upstream that ignored the limit) never costs the user more than was
    held, and the key's quota never goes below zero; the excess is the request log's overrun."""
    app, user_id = priced_gateway(make_app, upstream)
    key = make_key(app, user_id, unlimited_quota=False, remain_quota=50 * MICRO)
    upstream.usage = (12, 100_000)                            # far beyond max_tokens = 10
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "m1", "messages": HELLO, "max_tokens": 10}
    response = app.test_client().post(CHAT, json=body, headers=headers)
    assert response.status_code == 200
    [charged] = charges(app, user_id)
    held = -charged
    assert held < 100_000 * PRICED["output_per_mtok"]            # not the upstream's figure…
    assert held >= 10 * PRICED["output_per_mtok"]                # …but all of what was held
    assert float(response.headers["X-Credits-Charged"]) == held / MICRO
    assert overruns(app) == [12 * 1000 + 100_000 * 2000 - held]
    balance, reserved, ledger_sum, _ = money(app, user_id)
    assert (balance, reserved) == (ledger_sum, 0) and balance >= 0
    with app.app_context():
        key_id = db.session.scalar(sa.select(ApiKey.id))
    remain, reserved_quota, used = key_quota(app, key_id)
    assert (remain, reserved_quota, used) == (50 * MICRO - held, 0, held)


def test_the_prompt_is_held_at_its_byte_count(make_app, upstream):
    """'a ' × 5000 is 10,000 bytes: no tokenizer counts more tokens than that, and the hold counts
    that many, so a balance that covers a quarter of it (four characters a token) is refused."""
    app, user_id = priced_gateway(make_app, upstream, credits=5)
    headers = {"Authorization": f"Bearer {make_key(app, user_id)}"}
    prompt = [{"role": "user", "content": "a " * 5000}]
    response = app.test_client().post(CHAT, json={"model": "m1", "messages": prompt, "max_tokens": 1},
                                      headers=headers)
    assert response.status_code == 402
    assert response.get_json()["error"]["credits_required"] >= 10_000 * 1000 / MICRO
    assert upstream.requests == []


MALFORMED_ANSWERS = {
    "choices-a-string": b'{"choices": "nope", "usage": {"prompt_tokens": 1, "completion_tokens": 1}}',
    "choice-a-string": b'{"choices": ["nope"], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}',
    "message-a-string": b'{"choices": [{"message": "hi"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}',
    "usage-nan": b'{"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": NaN, "completion_tokens": 1}}',
    "usage-a-string": b'{"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": "12", '
                      b'"completion_tokens": 1}}',
    "usage-negative": b'{"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": -5, '
                      b'"completion_tokens": 1}}',
    "usage-not-an-object": b'{"choices": [{"message": {"content": "hi"}}], "usage": [1, 2]}',
    "content-a-number": b'{"choices": [{"message": {"content": 42}}], "usage": {"prompt_tokens": 1}}',
    "bad-json": b'{"choices": [',
    "wrong-content-type": b"<html><body>Bad gateway</body></html>",
    "a-json-array": b"[1, 2, 3]",
}


@pytest.mark.parametrize("raw", MALFORMED_ANSWERS.values(), ids=MALFORMED_ANSWERS.keys())
def test_a_malformed_answer_is_a_502_that_costs_nothing_and_holds_nothing(make_app, upstream, raw):
    """Each kind of malformed answer is retried like any bad answer, then 502 in OpenAI's shape; the
    hold is released at once and nothing is charged."""
    app, user_id = priced_gateway(make_app, upstream)
    headers = {"Authorization": f"Bearer {make_key(app, user_id)}"}
    content_type = "text/html" if raw.startswith(b"<html") else "application/json"
    upstream.script(Fault.answer(raw, content_type))
    response = app.test_client().post(CHAT, json={"model": "m1", "messages": HELLO, "max_tokens": 5}, headers=headers)
    assert response.status_code == 502
    assert response.get_json()["error"]["code"] == "upstream_error"
    assert held_reservations(app) == 0
    assert money(app, user_id)[:3] == (100 * MICRO, 0, 100 * MICRO)
    with app.app_context():
        assert db.session.scalar(sa.select(RequestLog.status)) == 502


MALFORMED_CHUNKS = {
    "choices-a-string": b'data: {"choices": "nope"}\n\n',
    "delta-a-string": b'data: {"choices": [{"index": 0, "delta": "nope"}]}\n\n',
    "usage-nan": b'data: {"choices": [], "usage": {"prompt_tokens": NaN, "completion_tokens": 1}}\n\n',
    "bad-json": b'data: {"choices": [\n\n',
    "a-json-string": b'data: "hello"\n\n',
}


@pytest.mark.parametrize("line", MALFORMED_CHUNKS.values(), ids=MALFORMED_CHUNKS.keys())
def test_a_malformed_chunk_mid_stream_ends_with_the_error_event(make_app, upstream, line):
    """After content reached the client, a malformed chunk ends the stream with the error event and no
    [DONE]; what was sent is billed once (never more than held) and nothing stays held."""
    app, user_id = priced_gateway(make_app, upstream)
    headers = {"Authorization": f"Bearer {make_key(app, user_id)}"}
    upstream.script(Fault.malformed(after=2, line=line))
    response = app.test_client().post(CHAT, json={"model": "m1", "messages": HELLO, "stream": True, "max_tokens": 50},
                                      headers=headers)
    events = sse_data(response.get_data())
    assert response.status_code == 200
    assert events[-1]["error"]["code"] == "stream_interrupted" and "[DONE]" not in events
    assert held_reservations(app) == 0
    balance, reserved, ledger_sum, _ = money(app, user_id)
    assert reserved == 0 and balance == ledger_sum and len(charges(app, user_id)) == 1


@pytest.mark.parametrize("line", MALFORMED_CHUNKS.values(), ids=MALFORMED_CHUNKS.keys())
def test_a_malformed_first_chunk_is_a_502_before_the_stream_commits(make_app, upstream, line):
    """Before any content, a malformed chunk is a failed attempt like any other: 502, nothing charged."""
    app, user_id = priced_gateway(make_app, upstream, retry={"max_attempts": 1})
    headers = {"Authorization": f"Bearer {make_key(app, user_id)}"}
    upstream.script(Fault.malformed(after=0, line=line))
    response = app.test_client().post(CHAT, json={"model": "m1", "messages": HELLO, "stream": True, "max_tokens": 50},
                                      headers=headers)
    assert response.status_code == 502
    assert held_reservations(app) == 0
    assert money(app, user_id)[:3] == (100 * MICRO, 0, 100 * MICRO)


def test_usage_given_as_whole_floats_is_taken(make_app, upstream):
    """12.0 tokens is 12 tokens: an upstream that writes counts as floats is not broken."""
    app, user_id = priced_gateway(make_app, upstream)
    headers = {"Authorization": f"Bearer {make_key(app, user_id)}"}
    upstream.script(Fault.answer(b'{"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}], '
                                 b'"usage": {"prompt_tokens": 12.0, "completion_tokens": 7.0, "total_tokens": 19.0}}'))
    response = app.test_client().post(CHAT, json={"model": "m1", "messages": HELLO, "max_tokens": 10}, headers=headers)
    assert response.status_code == 200
    usage = response.get_json()["usage"]
    assert {name: usage[name] for name in ("prompt_tokens", "completion_tokens", "total_tokens")} == \
        {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
    assert charges(app, user_id) == [-(12 * 1000 + 7 * 2000)]
    assert math.isclose(float(response.headers["X-Credits-Charged"]), (12 * 1000 + 7 * 2000) / MICRO)
