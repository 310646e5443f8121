"""/usage and /usage.csv: a user's own requests, tokens and spend per day, model and key; nobody else's."""
import csv
import io
import re
from datetime import timedelta

import pytest
from helpers import gateway_config
from web_client import web  # noqa: F401  (web is a fixture)

from conftest import make_key
from extensions import db
from models import ApiKey, RequestLog, User, credit
from models.user import utcnow


@pytest.fixture
def app(make_app, upstream):
    return make_app(gateway_config(upstream, {"m1": {"provider": "openai", "input_per_mtok": 1.0,
                                                     "output_per_mtok": 2.0}}))


def logged(app, username, model, days_ago=0, prompt=100, completion=50, cost=1000, key=True, status=200):
    """A request-log row of `username`'s, `days_ago` days back (through their first key unless key=False)."""
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.username == username))
        key_id = db.session.scalar(db.select(ApiKey.id).where(ApiKey.user_id == user.id)) if key else None
        db.session.add(RequestLog(request_id=f"r{db.session.scalar(db.select(db.func.count(RequestLog.id)))}",
                                  user_id=user.id, api_key_id=key_id, endpoint="chat", requested_model=model,
                                  model=model, provider="openai", status=status, prompt_tokens=prompt,
                                  completion_tokens=completion, cost=cost,
                                  created_at=utcnow() - timedelta(days=days_ago)))
        db.session.commit()


def row(model):
    """A model's row in the page's table (a bare "m2" may turn up in any random token of the page)."""
    return f'<th scope="row">{model}</th>'


def user_id(app, username):
    with app.app_context():
        return db.session.scalar(db.select(User.id).where(User.username == username))


def test_a_real_request_shows_up_in_the_callers_usage(app, web, upstream):
    """One chat completion through the API: /usage counts it under its model and key, with its cost."""
    alice = web("alice")
    key = make_key(app, user_id(app, "alice"), name="laptop")
    with app.app_context():
        credit.grant(user_id(app, "alice"), 5_000_000)
        db.session.commit()
    upstream.usage = (1000, 500)
    body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}
    response = app.test_client().post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200 and response.headers["X-Credits-Charged"] == "0.002"

    page = " ".join(alice.get("/usage").get_data(as_text=True).split())
    assert ('<th scope="row">m1</th><td class="num">1</td> <td class="num">1,000</td><td class="num">500</td> '
            '<td class="num">0.002</td>') in page
    assert re.search(r'<th scope="row">laptop \(sk-[^)]+\)</th><td class="num">1</td>', page)
    assert "<title>" in page and 'role="img"' in page                 # the charts are drawn


def test_a_user_sees_only_their_own_rows(app, web):
    """Bob's requests never appear in Alice's totals, tables or CSV; ?user= is for administrators."""
    web("root")
    alice = web("alice")
    web("bob")
    make_key(app, user_id(app, "alice"), name="alices-key")
    make_key(app, user_id(app, "bob"), name="bobs-key")
    logged(app, "alice", "m1", cost=1_000_000)
    logged(app, "bob", "secret-model", cost=7_000_000)

    page = alice.get("/usage").get_data(as_text=True)
    assert row("m1") in page and "alices-key" in page
    assert "secret-model" not in page and "bobs-key" not in page and "7.00" not in page
    assert "secret-model" not in alice.get("/usage.csv").get_data(as_text=True)
    assert alice.get(f"/usage?user={user_id(app, 'bob')}").status_code == 403
    assert alice.get(f"/usage.csv?user={user_id(app, 'bob')}").status_code == 403


def test_an_admin_sees_a_chosen_users_usage(app, web):
    root = web("root")
    web("bob")
    logged(app, "bob", "bobs-model", key=False)
    page = root.get(f"/usage?user={user_id(app, 'bob')}").get_data(as_text=True)
    assert "Usage of bob" in page and "bobs-model" in page and "web chat" in page
    assert root.get("/usage?user=999999").status_code == 404


def test_days_are_grouped_and_the_range_is_honoured(app, web):
    """Two rows today and one 10 days back: 7 days shows the two, 30 days all three, with a zero day between."""
    alice = web("alice")
    make_key(app, user_id(app, "alice"))
    logged(app, "alice", "m1", prompt=10, completion=5)
    logged(app, "alice", "m1", prompt=20, completion=5)
    logged(app, "alice", "m2", days_ago=10, prompt=1, completion=1)
    logged(app, "alice", "m3", days_ago=40)

    week = " ".join(alice.get("/usage?days=7").get_data(as_text=True).split())
    assert row("m2") not in week and row("m3") not in week and "<strong>40</strong>" in week      # 30 + 10 tokens
    month = " ".join(alice.get("/usage").get_data(as_text=True).split())
    assert row("m2") in month and row("m3") not in month and "<strong>42</strong>" in month
    today, ten_ago = utcnow().date(), utcnow().date() - timedelta(days=10)
    assert f"<title>{today.isoformat()}: 2 requests</title>" in month
    assert f"<title>{ten_ago.isoformat()}: 1 requests</title>" in month
    assert f"<title>{(ten_ago + timedelta(days=1)).isoformat()}: 0 requests</title>" in month
    assert month.count('class="chart-bar"') == 3 * 30


def test_the_csv_has_one_row_per_day_model_and_key_and_is_injection_safe(app, web):
    """A key named like a formula is written as text; the download is an attachment of text/csv."""
    alice = web("alice")
    make_key(app, user_id(app, "alice"), name="=HYPERLINK(\"http://evil\")")
    logged(app, "alice", "m1", cost=1_500_000)
    logged(app, "alice", "m1", cost=500_000)
    logged(app, "alice", "m2", days_ago=1, key=False)

    response = alice.get("/usage.csv?days=7")
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="usage-alice-7d.csv"'
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["day", "model", "key", "requests", "input_tokens", "output_tokens", "credits"]
    yesterday, today = (utcnow().date() - timedelta(days=1)).isoformat(), utcnow().date().isoformat()
    assert rows[1] == [yesterday, "m2", "web chat", "1", "100", "50", "0.001"]
    assert rows[2][:2] == [today, "m1"] and rows[2][2].startswith("'=HYPERLINK")
    assert rows[2][3:] == ["2", "200", "100", "2.00"]
    assert len(rows) == 3


def test_an_empty_range_says_what_to_do_next(app, web):
    page = web("alice").get("/usage").get_data(as_text=True)
    assert "No requests in the last 30 days" in page and 'href="/keys"' in page and 'class="chart-bar"' not in page


def test_usage_needs_a_login(app):
    response = app.test_client().get("/usage")
    assert response.status_code == 302 and "/login" in response.location
