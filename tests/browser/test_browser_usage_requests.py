"""/usage and /admin/requests in a real browser: charts and range, and the request log filtered by htmx
(rows swapped without a reload, the filtered URL pushed so it can be shared)."""
from datetime import timedelta

import pytest
from browser_fixtures import base_url, browser, page, register, screenshot  # noqa: F401  (fixtures)
from helpers import gateway_config

from conftest import make_user
from extensions import db
from models import ApiKey, RequestLog, User
from models.user import utcnow


@pytest.fixture
def app(make_app, upstream):
    return make_app(gateway_config(upstream, {
        "gpt-4o": {"provider": "openai", "input_per_mtok": 2.5, "output_per_mtok": 10.0},
        "gpt-4o-mini": {"provider": "openai", "input_per_mtok": 0.15, "output_per_mtok": 0.6}}))


PRICES = {"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6)}      # micro-USD per input / output token


def logged_request(user_id, key_id, n, model, when, ok):
    """One request-log row as Turn writes it: a served answer with its tokens and cost, or a 502."""
    prompt, completion = (400 + 37 * (n % 13), 120 + 23 * (n % 9)) if ok else (0, 0)
    price_in, price_out = PRICES[model]
    attempt = {"model": model, "provider": "openai", "key_id": "openai#1", "status": 200 if ok else 502,
               "latency_ms": 300.0, "error": None if ok else "upstream 502", "kind": None if ok else "server"}
    return RequestLog(request_id=f"u{user_id}-{n}", user_id=user_id, api_key_id=key_id, endpoint="chat",
                      requested_model=model, model=model if ok else None, provider="openai" if ok else None,
                      status=200 if ok else 502, attempts=[attempt], prompt_tokens=prompt,
                      completion_tokens=completion, cost=round(prompt * price_in + completion * price_out),
                      latency_ms=320.0 + n % 5, created_at=when)


def month_of_requests(app, username, key_names):
    """A month of `username`'s requests through their keys: one to five a day on two models, some failed."""
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.username == username))
        keys = [ApiKey.issue(user, name)[0] for name in key_names]
        db.session.flush()
        now, n = utcnow(), 0
        for day in range(30):
            for i in range(1 + (day * 7) % 5):
                n += 1
                db.session.add(logged_request(user.id, keys[n % len(keys)].id, n,
                                              "gpt-4o" if (day + i) % 3 else "gpt-4o-mini",
                                              now - timedelta(days=day, minutes=7 * i), ok=(day + i) % 11 != 0))
        db.session.commit()


def test_usage_charts_and_range(page, base_url, app):
    register(page, base_url, "root")
    make_user(app, "carol")
    month_of_requests(app, "root", ["laptop", "ci"])
    month_of_requests(app, "carol", ["carols-key"])

    page.goto(base_url + "/usage")
    assert page.locator("svg.bar-chart").count() == 3
    assert page.locator("svg.bar-chart").first.locator("rect.chart-bar").count() == 30
    assert page.is_visible("h2:has-text('By model')") and page.is_visible("th:has-text('laptop (sk-')")
    assert "carols-key" not in page.content()                      # only the user's own rows
    screenshot(page, "usage.png")

    page.click("a[role=button]:has-text('7 days')")
    page.wait_for_url(base_url + "/usage?days=7")
    assert page.locator("svg.bar-chart").first.locator("rect.chart-bar").count() == 7
    with page.expect_download() as download:
        page.click("a:has-text('Download CSV')")
    assert download.value.suggested_filename == "usage-root-7d.csv"


def test_admin_requests_filters_swap_rows_and_push_the_url(page, base_url, app):
    register(page, base_url, "root")
    make_user(app, "carol")
    month_of_requests(app, "root", ["laptop", "ci"])
    month_of_requests(app, "carol", ["carols-key"])

    page.goto(base_url + "/admin/requests")
    rows = page.locator("#request-rows tbody tr")
    assert rows.count() == 50 and page.is_visible("a:has-text('Older →')")
    page.evaluate("window.notReloaded = true")

    page.fill("input[name=user]", "carol")
    page.press("input[name=user]", "Enter")
    page.wait_for_url("**/admin/requests?user=carol**")
    page.wait_for_function("() => [...document.querySelectorAll('#request-rows tbody tr td:nth-child(2)')]"
                           ".every(td => td.textContent.trim() === 'carol')")
    page.fill("input[name=since]", (utcnow().date() - timedelta(days=2)).isoformat())
    page.wait_for_url("**since=**")
    page.wait_for_function("() => document.querySelectorAll('#request-rows tbody tr').length < 50")
    assert not page.is_visible("a:has-text('Older →')")
    screenshot(page, "admin-requests.png")
    page.select_option("select[name=status]", "502")
    page.wait_for_url("**status=502**")
    page.wait_for_function("() => [...document.querySelectorAll('#request-rows tbody tr .badge')]"
                           ".every(b => b.textContent.trim() === '502')")
    assert rows.count() >= 1 and page.evaluate("window.notReloaded") is True        # swapped by htmx, no reload

    shared = page.url                                                                # the filtered view, shared
    page.goto(shared)
    assert page.input_value("input[name=user]") == "carol" and page.input_value("select[name=status]") == "502"
    page.click("#request-rows tbody tr >> nth=0 >> td:first-child a")
    page.wait_for_selector("h2:has-text('Attempts')")
    assert page.is_visible("table.attempts td:has-text('openai#1')") and page.is_visible("td:has-text('upstream 502')")
