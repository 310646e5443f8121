"""The web UI in a real browser: register, keys shown once, streamed chat, stop, model switch, revoke."""

import pytest
import requests
import sqlalchemy as sa
from browser_fixtures import base_url, browser, page, register, screenshot  # noqa: F401  (fixtures)
from helpers import gateway_config

from extensions import db
from fake_upstream import Fault
from models import User, credit

REPLY = "Streaming works: this answer arrives in pieces, one small chunk at a time, over server-sent events."


@pytest.fixture
def app(make_app, upstream):
    upstream.reply_text, upstream.chunks = REPLY, 6
    return make_app(gateway_config(upstream, {"m1": {"provider": "openai", "input_per_mtok": 0.5,
                                                    "output_per_mtok": 1.5},
                                             "m2": {"provider": "openai"}}, groups={"main": ["m1", "m2"]}))


def test_keys_are_shown_once_and_revoked_keys_are_refused(page, base_url):
    register(page, base_url)
    assert page.is_visible("text=You have no API keys yet")
    page.fill("input[name=name]", "laptop")
    page.click("button:has-text('Create key')")
    raw = page.input_value("#new-key-value")
    assert raw.startswith("sk-") and len(raw) >= 35
    page.click("button[data-copy]")
    page.wait_for_selector("button[data-copy]:has-text('Copied')")
    assert page.is_hidden("text=You have no API keys yet")
    assert requests.get(base_url + "/v1/models", headers={"Authorization": f"Bearer {raw}"}, timeout=5).status_code == 200

    page.fill("input[name=name]", "ci")
    page.click("button:has-text('Create key')")
    page.wait_for_selector(".key-card >> nth=1")
    page.reload()
    assert raw not in page.content() and not page.is_visible("#new-key-value")
    assert page.locator(".key-card").count() == 2
    assert page.locator(".key-masked").first.inner_text().startswith("sk-")
    laptop = page.locator(".key-card", has_text="laptop")
    laptop.locator("summary").click()
    laptop.locator("textarea[name=allow_ips]").fill("not-an-ip")
    laptop.locator("button:has-text('Save')").click()
    page.wait_for_selector("text='not-an-ip' is not an IP address or CIDR network.")
    page.locator(".key-card", has_text="laptop").locator("textarea[name=allow_ips]").fill("127.0.0.1, 10.0.0.0/8")
    page.locator(".key-card", has_text="laptop").locator("button:has-text('Save')").click()
    page.wait_for_selector("text=IPs: 127.0.0.1/32, 10.0.0.0/8")
    screenshot(page, "keys.png")

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(".key-card", has_text="laptop").locator("button:has-text('Revoke')").click()
    page.wait_for_selector(".key-card:has-text('laptop')", state="detached")
    refused = requests.get(base_url + "/v1/models", headers={"Authorization": f"Bearer {raw}"}, timeout=5)
    assert refused.status_code == 401
    page.reload()
    assert page.locator(".key-card").count() == 1


def grant_credit(app, username, usd):
    with app.app_context():
        user_id = db.session.scalar(sa.select(User.id).where(User.username == username))
        credit.grant(user_id, int(usd * 1_000_000), description="browser test")
        db.session.commit()


def test_chat_streams_in_pieces_stops_and_switches_models(page, app, base_url, upstream):
    register(page, base_url)
    grant_credit(app, "alice", 5)        # m1 is priced: the answer shows what it cost
    page.goto(base_url + "/chat")
    assert page.is_visible("text=No conversations yet")
    page.select_option("select[name=model]", "m1")
    page.click("button:has-text('Start chatting')")
    page.wait_for_selector("#composer")

    # 1. The answer arrives in pieces: partial text is on screen while the stream still runs.
    upstream.script(Fault.paced(0.25), model="m1", times=1)
    page.fill("#composer textarea", "Tell me about **streaming**")
    page.click("button:has-text('Send')")
    page.wait_for_function("() => { const b = document.querySelector('.msg-live [data-stream-body]');"
                           " return b && b.textContent.length > 0; }")
    partial = page.locator(".msg-live [data-stream-body]").inner_text()
    assert partial and REPLY.startswith(partial.strip()) and partial.strip() != REPLY
    done = page.locator("article.msg[data-status=done]").last
    done.wait_for()
    assert REPLY in done.inner_text() and done.locator(".msg-model").inner_text() == "m1"
    assert "· 1 attempt ·" in done.inner_text() and "12 in / 7 out tokens" in done.inner_text()
    assert page.locator(".msg-user strong", has_text="streaming").count() == 1     # the question as markdown
    assert page.input_value("#composer textarea") == ""

    # 2. Switch models: the next answer comes from m2, and says so.
    page.select_option("#model-picker", "m2")
    page.fill("#composer textarea", "And you, m2?")
    page.click("button:has-text('Send')")
    page.wait_for_selector("article.msg[data-status=done] >> nth=1")
    assert page.locator("article.msg[data-status=done] .msg-model").last.inner_text() == "m2"
    assert upstream.requests[-1].model == "m2"

    # 3. Stop: the EventSource closes, the gateway hangs up on the upstream, the partial answer is kept.
    upstream.script(Fault.paced(0.6), model="m1", times=1)
    page.select_option("#model-picker", "m1")
    page.fill("#composer textarea", "A long answer, please")
    page.click("button:has-text('Send')")
    page.wait_for_function("() => { const b = document.querySelector('.msg-live [data-stream-body]');"
                           " return b && b.textContent.length > 0; }")
    requests_before_stop = len(upstream.requests)
    page.click("button[data-stop]")
    page.wait_for_selector("article.msg[data-status=stopped]")
    assert page.locator(".msg-live").count() == 0
    assert upstream.wait_for_hangup(requests_before_stop - 1)
    page.wait_for_timeout(300)
    page.reload()
    stopped = page.locator("article.msg[data-status=stopped]")
    assert "stopped" in stopped.inner_text() and stopped.locator(".msg-model").inner_text() == "m1"
    assert REPLY.startswith(stopped.locator(".msg-body").inner_text().strip())
    assert len(upstream.requests) == requests_before_stop          # reload did not call the upstream again


def test_models_page_filters_as_you_type(page, base_url):
    register(page, base_url)
    page.goto(base_url + "/models")
    assert page.locator("#model-rows tr").count() == 2
    assert "m1 → m2" not in page.content() and "m2" in page.locator("#model-rows tr").first.inner_text()
    page.fill("input[name=q]", "m2")
    page.wait_for_function("() => document.querySelectorAll('#model-rows tr').length === 1")
    assert "m2" in page.locator("#model-rows tr").inner_text()
    page.fill("input[name=q]", "nothing-like-this")
    page.wait_for_selector("text=No model matches")
