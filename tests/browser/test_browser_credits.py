"""Credits in a real browser: an admin creates a code, a user redeems it, the nav badge follows the balance."""

import pytest
from browser_fixtures import base_url, browser, page, register, screenshot  # noqa: F401  (fixtures)
from helpers import gateway_config


@pytest.fixture
def app(make_app, upstream):
    """One model priced per request only, so an answer costs exactly 0.25 credits whatever its tokens."""
    upstream.reply_text, upstream.chunks = "A priced answer, in a few pieces.", 4
    return make_app(gateway_config(upstream, {"m1": {"provider": "openai", "per_request": 0.25}}))


def badge_shows(page, text):
    """Wait until the nav badge (swapped in by htmx, never by a reload) reads `text`."""
    page.wait_for_function("text => document.getElementById('credit-badge').textContent.trim() === text", arg=text)


def test_admin_code_is_redeemed_and_the_badge_follows_redeem_and_chat(page, base_url, upstream):
    # 1. The admin creates one 25 USD package code; it is shown once, the batch list updates by itself.
    register(page, base_url, "root")
    page.goto(base_url + "/admin/codes")
    assert page.is_visible("text=No codes yet")
    page.select_option("select[name=package]", "25")
    page.fill("input[name=batch]", "browser-batch")
    page.click("button:has-text('Create codes')")
    code = page.input_value("#new-codes-value")
    assert code.startswith("gw-") and len(code) >= 20
    page.wait_for_selector("#batch-rows th:has-text('browser-batch')")
    assert page.is_hidden("text=No codes yet") and code not in page.inner_text("#batch-rows")
    page.reload()
    assert code not in page.content()
    page.click("form[action='/logout'] button")

    # 2. A user redeems it: the message, the balance card, the ledger and the nav badge all update in place.
    register(page, base_url, "bob")
    page.goto(base_url + "/credits")
    badge_shows(page, "0.00")
    assert page.is_visible("text=No credit movements yet")
    page.fill("#redeem-code", code)
    page.click("button:has-text('Redeem')")
    page.wait_for_selector("text=Added 27.50 credits. Your balance is now 27.50 credits.")
    badge_shows(page, "27.50")
    page.wait_for_function("() => document.querySelector('#balance-card [data-balance]').textContent === '27.50'")
    page.wait_for_selector("#ledger-rows td:has-text('redemption code')")
    assert page.is_hidden("text=No credit movements yet")

    # 3. The same code again: a clear error, and the balance does not move.
    page.fill("#redeem-code", code)
    page.click("button:has-text('Redeem')")
    page.wait_for_selector("text=This code does not exist or was already redeemed")
    assert page.locator("#ledger-rows tr").count() == 1
    badge_shows(page, "27.50")
    screenshot(page, "credits.png")

    # 4. A priced chat answer: once its stream is done the badge shows the charged balance, without a reload.
    page.goto(base_url + "/chat")
    page.select_option("select[name=model]", "m1")
    page.click("button:has-text('Start chatting')")
    page.fill("textarea[name=content]", "Spend a little")
    page.click("button:has-text('Send')")
    done = page.locator("article.msg[data-status=done]")
    done.wait_for()
    assert "0.25 credits" in done.inner_text()
    badge_shows(page, "27.25")
    assert len(upstream.requests) == 1
