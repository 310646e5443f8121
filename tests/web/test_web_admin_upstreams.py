"""/admin/upstreams: operator keys taken out by failover, open circuits and each key's cache-hit rate,
shown to admins only."""
import re
from datetime import timedelta

import pytest
from fake_upstream import Fault
from helpers import gateway_config
from web_client import web  # noqa: F401  (web is a fixture)

from conftest import make_key, make_user
from extensions import db
from models import RequestLog


@pytest.fixture
def app(make_app, upstream):
    return make_app(gateway_config(upstream, ["m1"], keys=("secret-key-a", "secret-key-b"),
                                   retry={"max_attempts": 1},
                                   circuit_breaker={"failure_threshold": 1, "distinct_callers": 1}))


def test_a_key_out_of_rotation_and_an_open_circuit_are_shown_by_label(app, web, upstream):
    """After a 401 on the first key and a 5xx on the second, the admin sees why the first is out, and
    the model's open circuit (a 5xx is the model's failure, not the second key's); the keys themselves
    never appear."""
    admin = web("root")
    caller = {"Authorization": f"Bearer {make_key(app, make_user(app, 'carol'))}"}
    upstream.script(Fault.status(401, "invalid key"), key="secret-key-a")
    upstream.script(Fault.status(503), key="secret-key-b")
    body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}
    assert app.test_client().post("/v1/chat/completions", json=body, headers=caller).status_code == 503
    page = admin.get("/admin/upstreams").get_data(as_text=True)
    first = page[page.index("<code>openai#1</code>"):page.index("<code>openai#2</code>")]
    assert "out</span> 401: invalid key" in first and "back in 86" in first        # a day, shared by the workers
    second = page[page.index("<code>openai#2</code>"):]
    assert "in use" in second and "<td>closed</td>" in second
    assert "<tr><td>m1</td><td>open</td><td>1</td></tr>" in page
    assert "secret-key-a" not in page and "secret-key-b" not in page


def test_upstreams_page_is_for_admins_only(app, web):
    web("root")
    assert web("bob").get("/admin/upstreams").status_code == 403



def test_each_keys_cache_hit_rate_over_the_last_day_counts_the_key_that_answered(app, web, upstream):
    """75 % of the first key's prompt tokens came from the cache; the second key answered the request the
    first one refused (25 %), and its older answer (two days ago, all cached) is outside the window."""
    admin = web("root")
    caller = {"Authorization": f"Bearer {make_key(app, make_user(app, 'carol'))}"}
    body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}

    def served(cached):
        upstream.cache = (cached, 0)
        response = app.test_client().post("/v1/chat/completions", json=body, headers=caller)
        assert response.status_code == 200
        return response.headers["X-Request-ID"]

    page = admin.get("/admin/upstreams").get_data(as_text=True)
    assert page.count("no requests") == 2
    served(9)                                                    # of 12 prompt tokens
    first = upstream.requests[-1].key
    old = served(12)
    upstream.script(Fault.status(401, "invalid key"), key=first)
    served(3)
    assert upstream.requests[-1].key != first
    with app.app_context():
        row = db.session.scalar(db.select(RequestLog).where(RequestLog.request_id == old))
        row.created_at -= timedelta(days=2)
        row.attempts = [{**row.attempts[0], "key_id": "openai#2" if first == "secret-key-a" else "openai#1"}]
        db.session.commit()
    page = admin.get("/admin/upstreams").get_data(as_text=True)
    labels = {"secret-key-a": "openai#1", "secret-key-b": "openai#2"}
    other = "secret-key-b" if first == "secret-key-a" else "secret-key-a"
    rows = {re.search(r"<code>(.+?)</code>", row).group(1): row for row in page.split("<tr>") if "<code>" in row}
    assert "75.0 %" in rows[labels[first]] and "25.0 %" in rows[labels[other]]
    assert "no requests" not in page and "100.0 %" not in page
