"""An answer outlives its page in a real browser: a reload mid-answer, or a second tab, picks it up."""
import pytest
from browser_fixtures import base_url, browser, page, register  # noqa: F401  (fixtures)
from helpers import gateway_config

from fake_upstream import Fault

REPLY = "A long answer that keeps coming while the page is reloaded, and ends whole on the new page."


@pytest.fixture
def app(make_app, upstream):
    upstream.reply_text, upstream.chunks = REPLY, 8
    return make_app(gateway_config(upstream, ["m1"], groups={"main": ["m1"]}))


def live_text(page):
    return page.evaluate("() => { const b = document.querySelector('.msg-live [data-stream-body]');"
                         " return b ? b.textContent : ''; }")


def test_a_reload_mid_answer_reattaches_and_a_second_tab_follows_the_same_answer(page, base_url, upstream):
    register(page, base_url)
    page.goto(base_url + "/chat")
    page.click("button:has-text('Start chatting')")
    page.wait_for_selector("#composer")
    upstream.script(Fault.paced(0.4), model="m1", times=1)
    page.fill("textarea[name=content]", "Please write a long answer")
    page.click("button:has-text('Send')")
    page.wait_for_function("() => { const b = document.querySelector('.msg-live [data-stream-body]');"
                           " return b && b.textContent.length > 0; }")
    before = live_text(page)

    page.reload()                                       # F5 while the answer is being written
    page.wait_for_selector(".msg-live")
    assert live_text(page).startswith(before.strip()) and live_text(page).strip() != REPLY
    second = page.context.new_page()                    # and the same conversation in another tab
    second.goto(page.url)

    for tab in (page, second):
        done = tab.locator("article.msg[data-status=done]")
        done.wait_for()
        assert REPLY in done.inner_text() and "stopped" not in done.inner_text()
    assert len(upstream.requests) == 1                  # neither the reload nor the second tab asked again
    assert not upstream.requests[0].hung_up             # and the upstream was never left mid-answer
