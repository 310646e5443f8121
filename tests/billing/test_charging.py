"""Reserve → call → settle or release: proven from the fake upstream's log and the ledger."""
import time

import pytest
import requests

from conftest import make_key, make_user
from extensions import db
from fake_upstream import Fault
from helpers import gateway_config, live_server, sse_data
from ledger import MICRO, PRICED, charges, held_reservations, money, price_of
from models import RequestLog, credit

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hi"}]


def priced_gateway(make_app, upstream, credits=100, models=None, groups=None, **kw):
    """m1 and m2 priced differently (m2 costs double), one group; a user with `credits`."""
    models = models or {"m1": {"provider": "openai", **PRICED},
                        "m2": {"provider": "openai", "input_per_mtok": 2000.0, "output_per_mtok": 4000.0}}
    app = make_app(gateway_config(upstream, models, groups or {"g": ["m1", "m2"]}, keys=("key-a",), **kw))
    user_id = make_user(app)
    if credits:
        with app.app_context():
            credit.grant(user_id, credits * MICRO)
            db.session.commit()
    return app, user_id


def test_402_before_any_upstream_call(make_app, upstream):
    """No balance: 402 naming the user balance and the amounts, and the upstream is never called."""
    app, user_id = priced_gateway(make_app, upstream, credits=0)
    headers = {"Authorization": f"Bearer {make_key(app, user_id)}"}
    response = app.test_client().post(CHAT, json={"model": "m1", "messages": HELLO, "max_tokens": 10}, headers=headers)
    assert response.status_code == 402
    error = response.get_json()["error"]
    assert (error["type"], error["limit_source"], error["credits_available"]) == ("insufficient_quota", "user_balance", 0)
    assert error["credits_required"] > 0
    assert upstream.requests == []
    assert money(app, user_id)[:3] == (0, 0, 0)


@pytest.mark.parametrize("extra", [
    {"tools": [{"type": "function", "function": {"name": "lookup", "description": "x" * 40_000,
                                                 "parameters": {"type": "object"}}}]},
    {"messages": [{"role": "user", "content": "Привет, мир! " * 100}]},
], ids=["tool-definitions", "cyrillic-text"])
def test_reservation_counts_everything_the_upstream_reads(make_app, upstream, extra):
    """Tool definitions and non-English text count in the reservation: a request whose prompt alone
    costs more than the balance gets 402 before any upstream call, instead of being served and
    charged only what the balance happened to hold."""
    app, user_id = priced_gateway(make_app, upstream, credits=1)
    headers = {"Authorization": f"Bearer {make_key(app, user_id)}"}
    response = app.test_client().post(CHAT, json={"model": "m1", "messages": HELLO, "max_tokens": 1, **extra},
                                      headers=headers)
    assert response.status_code == 402
    assert response.get_json()["error"]["limit_source"] == "user_balance"
    assert upstream.requests == []
    assert money(app, user_id)[:3] == (MICRO, 0, MICRO)


def test_a_huge_max_tokens_is_reserved_in_full(make_app, upstream):
    """max_tokens is the worst case the answer may cost: a huge one against a small balance is a 402
    before any upstream call, not a bet that the answer stays short."""
    app, user_id = priced_gateway(make_app, upstream, credits=1)
    headers = {"Authorization": f"Bearer {make_key(app, user_id)}"}
    response = app.test_client().post(CHAT, json={"model": "m1", "messages": HELLO, "max_tokens": 1_000_000},
                                      headers=headers)
    assert response.status_code == 402
    assert response.get_json()["error"]["credits_required"] > 1
    assert upstream.requests == []


def test_key_quota_limits_before_the_balance(make_app, upstream):
    """A rich user with a nearly spent key: 402 says the key quota refused, with what it has left."""
    app, user_id = priced_gateway(make_app, upstream)
    key = make_key(app, user_id, unlimited_quota=False, remain_quota=5)
    response = app.test_client().post(CHAT, json={"model": "m1", "messages": HELLO, "max_tokens": 10},
                                      headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 402
    assert response.get_json()["error"]["limit_source"] == "key_quota"
    assert upstream.requests == []


def test_success_on_third_attempt_is_charged_once_at_the_answering_model(make_app, upstream):
    """m1 fails twice (its max_attempts), m2 answers: one charge, at m2's price, for m2's usage."""
    app, user_id = priced_gateway(make_app, upstream, retry={"max_attempts": 2})
    headers = {"Authorization": f"Bearer {make_key(app, user_id)}"}
    upstream.script(Fault.status(500), model="m1")
    response = app.test_client().post(CHAT, json={"model": "m1", "messages": HELLO}, headers=headers)
    assert response.status_code == 200
    assert [r.model for r in upstream.requests] == ["m1", "m1", "m2"]
    expected = price_of(upstream.usage, {"input_per_mtok": 2000.0, "output_per_mtok": 4000.0})
    assert charges(app, user_id) == [-expected]
    balance, reserved, ledger_sum, _ = money(app, user_id)
    assert (balance, reserved, ledger_sum) == (100 * MICRO - expected, 0, balance)
    assert response.headers["X-Credits-Charged"] == str(expected / MICRO)
    assert float(response.headers["X-Credits-Remaining"]) == balance / MICRO


def test_all_attempts_failing_charges_nothing(make_app, upstream):
    """Every candidate fails: 502, no charge row, nothing left reserved."""
    app, user_id = priced_gateway(make_app, upstream, retry={"max_attempts": 1})
    headers = {"Authorization": f"Bearer {make_key(app, user_id)}"}
    upstream.script(Fault.status(500))
    response = app.test_client().post(CHAT, json={"model": "m1", "messages": HELLO}, headers=headers)
    assert response.status_code == 502
    assert len(upstream.requests) == 2
    assert money(app, user_id) == (100 * MICRO, 0, 100 * MICRO, [("grant", 100 * MICRO)])
    assert held_reservations(app) == 0


def test_empty_completion_is_free(make_app, upstream):
    """An answer with no completion tokens costs nothing, though the prompt was read."""
    app, user_id = priced_gateway(make_app, upstream)
    headers = {"Authorization": f"Bearer {make_key(app, user_id)}"}
    upstream.reply_text, upstream.usage = "", (12, 0)
    assert app.test_client().post(CHAT, json={"model": "m1", "messages": HELLO}, headers=headers).status_code == 200
    assert charges(app, user_id) == []
    assert money(app, user_id)[:2] == (100 * MICRO, 0)


def test_streams_are_charged_and_say_so(make_app, upstream):
    """A finished stream is charged from the upstream's usage; its headers say what was held and what is left."""
    app, user_id = priced_gateway(make_app, upstream)
    headers = {"Authorization": f"Bearer {make_key(app, user_id)}"}
    response = app.test_client().post(CHAT, json={"model": "m1", "messages": HELLO, "stream": True}, headers=headers)
    assert sse_data(response.get_data())[-1] == "[DONE]"
    reserved = round(float(response.headers["X-Credits-Reserved"]) * MICRO)
    assert round(float(response.headers["X-Credits-Remaining"]) * MICRO) == 100 * MICRO - reserved
    assert charges(app, user_id) == [-price_of(upstream.usage)]


def test_abandoned_stream_is_charged_for_what_was_sent(make_app, upstream):
    """The client hangs up after a few chunks: the bill covers the text produced so far, not the whole answer."""
    app, user_id = priced_gateway(make_app, upstream)
    headers = {"Authorization": f"Bearer {make_key(app, user_id)}"}
    upstream.reply_text = "word " * 200
    upstream.chunks = 50
    upstream.script(Fault.paced(0.1), model="m1")
    with live_server(app) as base:
        response = requests.post(base + CHAT, json={"model": "m1", "messages": HELLO, "stream": True},
                                 headers=headers, stream=True, timeout=10)
        lines = response.iter_lines()
        received = [next(lines) for _ in range(8)]
        response.close()
        assert upstream.wait_for_hangup(0, timeout=4)
        deadline = time.monotonic() + 5
        while not charges(app, user_id) and time.monotonic() < deadline:
            time.sleep(0.05)
    sent_chars = sum(len(line) for line in received)
    [charge] = charges(app, user_id)
    full_price = price_of(upstream.usage)
    assert 0 < -charge < price_of((0, len(upstream.reply_text) // 4 + 1))
    assert -charge <= sent_chars * 2000 * 4         # never more than everything that went out could cost
    assert full_price != -charge
    with app.app_context():
        row = db.session.scalars(db.select(RequestLog)).one()
    assert (row.status, row.error) == (499, "client disconnected")
    assert held_reservations(app) == 0


def test_price_group_ratio_applies(make_app, upstream):
    """A key in a price group pays the configured ratio of the list price."""
    app, user_id = priced_gateway(make_app, upstream, price_groups={"vip": 0.5})
    headers = {"Authorization": f"Bearer {make_key(app, user_id, group='vip')}"}
    assert app.test_client().post(CHAT, json={"model": "m1", "messages": HELLO}, headers=headers).status_code == 200
    assert charges(app, user_id) == [-price_of(upstream.usage, ratio=0.5)]


def test_sweeper_releases_reservations_of_dead_workers(make_app, upstream):
    """A reservation never settled (its worker was killed) is released by the sweeper, once."""
    app, user_id = priced_gateway(make_app, upstream)
    with app.app_context():
        credit.reserve("dead-worker-request", user_id, None, 5 * MICRO)
        assert credit.available_balance(user_id) == 95 * MICRO
        assert credit.sweep(older_than_s=3600) == 0
        assert credit.sweep(older_than_s=0) == 1
        assert credit.sweep(older_than_s=0) == 0
        assert credit.available_balance(user_id) == 100 * MICRO
    result = app.test_cli_runner().invoke(args=["credits", "sweep", "--older-than", "0"])
    assert "released 0" in result.output




def test_a_long_stream_keeps_its_hold_from_the_sweeper(make_app, upstream):
    """A stream that runs longer than the sweeper's age limit renews its hold as it goes: the sweeper
    releases nothing while it runs, and the stream is charged once when it ends."""
    app = make_app(gateway_config(upstream, {"m1": {"provider": "openai", **PRICED}}, keys=("key-a",)),
                   RESERVATION_SWEEP_S=0.6)
    user_id = make_user(app)
    with app.app_context():
        credit.grant(user_id, 100 * MICRO)
        db.session.commit()
    headers = {"Authorization": f"Bearer {make_key(app, user_id)}"}
    upstream.reply_text, upstream.chunks = "word " * 40, 20
    upstream.script(Fault.paced(0.1), model="m1")
    swept = []
    with live_server(app) as base:
        response = requests.post(base + CHAT, json={"model": "m1", "messages": HELLO, "stream": True},
                                 headers=headers, stream=True, timeout=10)
        started = time.monotonic()
        for _ in response.iter_lines():
            if time.monotonic() - started > 1.0 and not swept:      # the hold is older than 0.6 s by now
                with app.app_context():
                    swept.append(credit.sweep(older_than_s=0.6))
    assert swept == [0]
    assert len(charges(app, user_id)) == 1
    assert held_reservations(app) == 0


def test_reconciliation_after_mixed_run(make_app, upstream):
    """After successes, failures, fallbacks and broken streams: debits = Σ served usage × answering price."""
    app, user_id = priced_gateway(make_app, upstream, retry={"max_attempts": 1})
    headers = {"Authorization": f"Bearer {make_key(app, user_id)}"}
    client = app.test_client()
    plan = [(None, False), (Fault.status(500), False), (Fault.status(500), True), (Fault.cut(after=2), True),
            (None, True), (Fault.status(400), False), (Fault.reset(), False), (None, False)]
    for fault, stream in plan:
        upstream.reset()
        if fault is not None:
            upstream.script(fault, model="m1", times=1)
        body = {"model": "m1", "messages": HELLO, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        client.post(CHAT, json=body, headers=headers).get_data()
    prices = {"m1": PRICED, "m2": {"input_per_mtok": 2000.0, "output_per_mtok": 4000.0}}
    with app.app_context():
        answered = db.session.scalars(db.select(RequestLog).where(RequestLog.model.is_not(None))).all()
        expected = sum(price_of((r.prompt_tokens, r.completion_tokens), prices[r.model]) for r in answered)
    assert sorted(r.status for r in answered) == [200] * 6 + [502]      # the cut stream pays for what it sent
    balance, reserved, ledger_sum, rows = money(app, user_id)
    assert -sum(amount for kind, amount in rows if kind == "charge") == expected
    assert (balance, reserved) == (ledger_sum, 0)
