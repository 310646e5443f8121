"""The chat in a real browser as people expect it: markdown tables and highlighted code with a copy
button, Enter / Shift+Enter / Esc, Send disabled while an answer streams, rename, delete and undo,
regenerate, edit-and-resend, a system prompt, a 0-credit user's first answer, and a phone screen."""
import pytest
import sqlalchemy as sa
from browser_fixtures import SCREENSHOTS, base_url, browser, page, register, screenshot  # noqa: F401  (fixtures)
from helpers import gateway_config

from extensions import db
from fake_upstream import Fault
from models import User, credit

TABLE_AND_CODE = ("Here is a comparison:\n\n| model | speed |\n|---|---|\n| m1 | fast |\n| m2 | slow |\n\n"
                  "```python\ndef greet(name):\n    return f\"hi {name}\"\n```\n\n- [x] tables\n- [ ] ~~nothing else~~")
LIVE_BODY = "() => { const b = document.querySelector('.msg-live [data-stream-body]'); return b && b.textContent.length > 0; }"


@pytest.fixture
def app(make_app, upstream):
    """m1 costs 0.25 credits a request (so the balance visibly moves); the demo model is free."""
    upstream.reply_text, upstream.chunks = TABLE_AND_CODE, 6
    return make_app(gateway_config(upstream, {"m1": {"provider": "openai", "per_request": 0.25}},
                                   demo={"enabled": True}))


def grant_credit(app, username, usd):
    with app.app_context():
        user_id = db.session.scalar(sa.select(User.id).where(User.username == username))
        credit.grant(user_id, int(usd * 1_000_000), description="browser test")
        db.session.commit()


def start_chat(page, base_url, app, model="m1"):
    register(page, base_url)
    if model != "demo-chat":
        grant_credit(app, "alice", 5)
    page.goto(base_url + "/chat")
    page.select_option("select[name=model]", model)
    page.click("button:has-text('Start chatting')")
    page.wait_for_selector("#composer")


def send(page, text):
    page.fill("#composer textarea", text)
    page.press("#composer textarea", "Enter")


def test_a_table_renders_as_a_table_and_code_is_highlighted_with_a_copy_button(page, app, base_url):
    start_chat(page, base_url, app)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    send(page, "Compare them, with `code` please")
    answer = page.locator("article.msg[data-status=done]")
    answer.wait_for()
    assert answer.locator("table th").all_inner_texts() == ["model", "speed"]
    assert answer.locator("table tbody tr").count() == 2 and "|" not in answer.locator("table").inner_text()
    assert answer.locator("pre.highlight span.k", has_text="def").count() == 1          # highlighted on the server
    assert answer.locator("input[type=checkbox][disabled]").count() == 2 and answer.locator("s").count() == 1
    color = page.evaluate("() => getComputedStyle(document.querySelector('pre.highlight .k')).color")
    plain = page.evaluate("() => getComputedStyle(document.querySelector('pre.highlight code')).color")
    assert color != plain
    page.emulate_media(color_scheme="dark")                                           # a palette per theme
    assert page.evaluate("() => getComputedStyle(document.querySelector('pre.highlight .k')).color") != color
    page.emulate_media(color_scheme="light")
    answer.locator("button[data-copy-code]").click()
    page.wait_for_selector("button[data-copy-code]:has-text('Copied')")
    assert page.evaluate("() => navigator.clipboard.readText()") == 'def greet(name):\n    return f"hi {name}"\n'
    user_code = page.locator(".msg-user code")                                        # readable in the user's bubble
    assert user_code.evaluate("e => getComputedStyle(e).color") == page.locator(".msg-user .msg-body").evaluate(
        "e => getComputedStyle(e).color")
    page.set_viewport_size({"width": 1280, "height": 1200})        # tall enough that the composer sits below the answer
    screenshot(page, "chat.png")


def test_enter_sends_shift_enter_does_not_send_disabled_while_streaming_esc_stops(page, app, base_url, upstream):
    start_chat(page, base_url, app)
    badge = page.locator("#credit-badge").inner_text()
    page.click("#composer textarea")
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    assert page.input_value("#composer textarea") == "first line\nsecond line"
    assert page.locator(".msg-user").count() == 0 and upstream.requests == []

    upstream.script(Fault.paced(0.6), model="m1", times=1)
    page.keyboard.press("Enter")
    page.wait_for_function(LIVE_BODY)
    assert page.locator(".msg-user .msg-body").inner_text() == "first line\nsecond line"    # one question, its lines kept
    assert page.is_disabled("#composer [data-send]")
    page.fill("#composer textarea", "an interleaved question")
    page.press("#composer textarea", "Enter")                   # refused while the answer is written
    page.reload()                                                  # also after a reload mid-answer
    page.wait_for_selector(".msg-live")
    assert page.is_disabled("#composer [data-send]") and page.locator(".msg-user").count() == 1

    page.keyboard.press("Escape")
    stopped = page.locator("article.msg[data-status=stopped]")
    stopped.wait_for()
    page.wait_for_function("() => !document.querySelector('#composer [data-send]').disabled")
    assert stopped.locator(".msg-body p").count() >= 1 and "Here is" in stopped.locator(".msg-body").inner_text()
    page.wait_for_function("before => document.querySelector('#credit-badge').textContent.trim() !== before",
                           arg=badge.strip())                      # the badge refreshed after Stop
    assert len(upstream.requests) == 1
    send(page, "One more after the reload")                        # no oobErrorNoTarget (console errors fail the test)
    page.locator("article.msg[data-status=done]").wait_for()
    assert page.locator(".msg-user").count() == 2 and page.input_value("#composer textarea") == ""


def test_rename_delete_and_undo(page, app, base_url):
    start_chat(page, base_url, app, model="demo-chat")
    send(page, "**Plans** for the trip")
    page.locator("article.msg[data-status=done]").wait_for()
    assert page.locator("#conversation-title").inner_text() == "Plans for the trip"      # plain text, no **
    page.click("summary:has-text('Rename')")
    page.fill("input[name=title]", "Lisbon trip")
    page.click("button:has-text('Save title')")
    page.wait_for_selector("#conversation-title:has-text('Lisbon trip')")
    assert page.locator("#conversation-list a[aria-current=page]").inner_text() == "Lisbon trip"
    page.fill("#conversation-search", "nothing like it")
    page.wait_for_selector("#conversation-list:has-text('No conversation mentions')")
    page.fill("#conversation-search", "lisbon")
    page.wait_for_selector("#conversation-list a:has-text('Lisbon trip')")

    page.click("button:has-text('Delete')")
    page.wait_for_selector(".undo-toast:has-text('Deleted “Lisbon trip”.')")
    assert page.locator("#conversation-list a", has_text="Lisbon trip").count() == 0
    page.click(".undo-toast button:has-text('Undo')")
    page.wait_for_selector("#conversation-title:has-text('Lisbon trip')")
    assert "Plans" in page.locator(".msg-user").inner_text()


def test_regenerate_edit_and_resend_and_the_system_prompt_reaches_the_upstream(page, app, base_url, upstream):
    start_chat(page, base_url, app)
    page.click("summary:has-text('Settings')")
    page.fill("textarea[name=system_prompt]", "Answer like a pirate.")
    page.fill("input[name=temperature]", "0.2")
    page.click("button:has-text('Save settings')")
    page.wait_for_selector("text=Saved: the next answer uses these settings.")
    send(page, "What is a table?")
    page.locator("article.msg[data-status=done]").wait_for()
    assert upstream.requests[-1].body["messages"][0] == {"role": "system", "content": "Answer like a pirate."}
    assert upstream.requests[-1].body["temperature"] == 0.2

    upstream.reply_text = "A second, different answer."
    page.click("button[data-regenerate]")
    page.wait_for_selector("article.msg[data-status=done]:has-text('A second, different answer.')")
    assert page.locator("article.msg-assistant").count() == 1 and len(upstream.requests) == 2

    upstream.reply_text = "An answer to the edited question."
    page.click(".msg-user summary:has-text('Edit')")
    page.fill(".msg-user textarea[name=content]", "What is a chair?")
    page.click("button:has-text('Ask again')")
    page.wait_for_selector("article.msg[data-status=done]:has-text('An answer to the edited question.')")
    assert page.locator(".msg-user .msg-body").all_inner_texts() == ["What is a chair?"]
    assert page.locator("article.msg-assistant").count() == 1
    assert [m["content"] for m in upstream.requests[-1].body["messages"]] == ["Answer like a pirate.", "What is a chair?"]


def test_a_new_user_without_credit_is_answered_by_the_demo_model(page, base_url, upstream):
    register(page, base_url)
    page.goto(base_url + "/chat")
    assert page.input_value("select[name=model]") == "demo-chat"       # preselected: it is free
    page.click("button:has-text('Start chatting')")
    send(page, "Hello!")
    done = page.locator("article.msg[data-status=done]")
    done.wait_for()
    assert done.locator(".msg-model").inner_text() == "demo-chat" and "You said: Hello!" in done.inner_text()
    assert upstream.requests == []


def test_the_chat_fits_a_phone_and_the_composer_stays_in_reach(page, base_url):
    page.set_viewport_size({"width": 390, "height": 844})
    register(page, base_url)
    page.goto(base_url + "/chat")
    page.click("button:has-text('Start chatting')")
    for answered, question in enumerate(("A first question that is long enough to wrap on a phone screen", "Second",
                                         "Third"), start=1):
        send(page, question)
        page.locator("article.msg[data-status=done]").nth(answered - 1).wait_for()
        page.wait_for_function("() => !document.querySelector('#composer [data-send]').disabled")
    for width in (360, 390):
        page.set_viewport_size({"width": width, "height": 844})
        page.evaluate("() => window.scrollTo(0, 0)")
        too_wide = page.evaluate("""() => [...document.querySelectorAll('.chat-layout, .chat-layout *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('pre, table'))
            .map(e => e.tagName + '.' + e.className)""")
        assert too_wide == [], width
        assert page.evaluate("() => document.querySelector('.chat-layout').scrollWidth") <= width
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width      # the whole page, nav included
        box = page.locator("#composer").bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= 844      # in view without scrolling down
    page.click("#composer textarea")
    assert page.locator("#composer [data-send]").is_visible()
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    page.screenshot(path=str(SCREENSHOTS / "chat-phone.png"))      # what the phone shows, not the whole page
