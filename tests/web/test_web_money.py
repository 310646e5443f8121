"""One money format: 2 decimals, more only below a cent, never scientific notation; headers keep every micro-USD."""
import re

import pytest
from conftest import make_key
from helpers import gateway_config
from web_client import web  # noqa: F401  (web is a fixture)

from extensions import db
from gateway.pricing import format_credits
from models import User, credit

PLAIN_NUMBER = re.compile(r"^-?\d+\.\d{2,6}$")


@pytest.mark.parametrize(("micro", "shown"), [
    (0, "0.00"), (None, "0.00"), (4_000, "0.004"), (4_200, "0.0042"), (18, "0.000018"), (9_999, "0.009999"),
    (10_000, "0.01"), (12_490_401, "12.49"), (9_990_780, "9.99"), (9_995_000, "10.00"), (27_500_000, "27.50"),
    (1_234_567_890_123, "1,234,567.89"), (10**15, "1,000,000,000.00"), (-4_200, "-0.0042"), (-12_490_401, "-12.49"),
])
def test_pages_show_two_decimals_and_more_only_below_a_cent(micro, shown):
    assert format_credits(micro) == shown


@pytest.mark.parametrize(("micro", "sent"), [
    (0, "0.00"), (18, "0.000018"), (4_200, "0.0042"), (10_000, "0.01"), (12_490_401, "12.490401"),
    (9_990_780, "9.99078"), (1_234_567_890_123, "1234567.890123"), (-4_200, "-0.0042"),
])
def test_headers_keep_every_micro_usd_without_separators(micro, sent):
    assert format_credits(micro, exact=True) == sent


@pytest.fixture
def app(make_app, upstream):
    return make_app(gateway_config(upstream, {"m1": {"provider": "openai", "input_per_mtok": 2.0,
                                                     "output_per_mtok": 0.0}}))


def test_a_tiny_charge_is_sent_as_a_plain_number_and_the_pages_round_the_balance(app, web, upstream):
    """18 micro-USD used to leave as `1.8e-05`; the balance badge and ledger show 2 decimals."""
    alice = web("alice")
    with app.app_context():
        alice_id = db.session.scalar(db.select(User.id).where(User.username == "alice"))
        credit.grant(alice_id, 12_490_401)
        db.session.commit()
    key = make_key(app, alice_id)
    upstream.usage = (9, 1)                                      # an empty answer would not be charged
    body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}
    answer = app.test_client().post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200
    assert answer.headers["X-Credits-Charged"] == "0.000018"
    assert answer.headers["X-Credits-Remaining"] == "12.490383"

    streamed = app.test_client().post("/v1/chat/completions", json={**body, "stream": True},
                                      headers={"Authorization": f"Bearer {key}"})
    assert streamed.status_code == 200
    assert PLAIN_NUMBER.match(streamed.headers["X-Credits-Reserved"])
    assert PLAIN_NUMBER.match(streamed.headers["X-Credits-Remaining"])
    streamed.get_data()

    page = alice.get("/credits").get_data(as_text=True)
    assert "12.49" in page and "-0.000018" in page               # the balance to the cent, the tiny charge in full
    assert "12.490" not in page and "e-05" not in page
