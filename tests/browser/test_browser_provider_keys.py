"""/provider-keys in a real browser: add two keys, select the second, test it, delete the first, and watch
the history panel follow every change through htmx, without a page reload."""

import pytest
from browser_fixtures import base_url, browser, page, register, screenshot  # noqa: F401  (fixtures)
from helpers import gateway_config

SECRETS = {"First": "sk-browser-first-key-1111", "Second": "sk-browser-second-key-2222"}


@pytest.fixture
def app(make_app, upstream):
    return make_app(gateway_config(upstream, ["m1"], keys=("operator-key",), retry={"max_attempts": 1}))


def add_key(page, name):
    form = page.locator("#add-provider-key")
    form.locator("input[name=name]").fill(name)
    form.locator("input[name=api_key]").fill(SECRETS[name])
    form.get_by_role("button", name="Add key").click()
    page.wait_for_selector(f"text=Key “{name}” added for openai.")
    page.wait_for_selector(f"#provider-key-history :text(\"Added key '{name}' for openai\")")


def card(page, name):
    return page.locator(".pkey-card", has=page.locator(".key-name", has_text=name))


def test_add_select_test_and_delete_with_a_live_history(page, base_url, upstream):
    register(page, base_url)
    page.click("nav a:has-text('Provider keys')")
    page.wait_for_url(base_url + "/provider-keys")
    assert page.is_visible("text=You have no provider keys yet")
    assert page.is_visible("#provider-key-history :text('Nothing yet')")
    page.evaluate("window.sameDocument = true")          # gone if anything below reloads the page

    add_key(page, "First")
    assert page.input_value("#add-provider-key input[name=api_key]") == ""      # the form starts afresh
    add_key(page, "Second")
    assert card(page, "First").locator(".key-masked").inner_text() == "…1111"
    assert page.locator(".pkey-group h2").all_inner_texts() == ["openai"]

    card(page, "First").get_by_role("button", name="Select", exact=True).click()
    page.wait_for_selector(".pkey-card.pkey-selected:has-text('First')")
    card(page, "Second").get_by_role("button", name="Select", exact=True).click()
    page.wait_for_selector(".pkey-card.pkey-selected:has-text('Second')")
    assert page.locator(".pkey-card.pkey-selected").count() == 1
    page.wait_for_selector("#provider-key-history :text(\"Key 'Second' selected\")")
    history = page.locator("#provider-key-history .activity-row").all_inner_texts()
    assert [row.split()[0] for row in history] == ["SELECT", "UNSELECT", "SELECT", "ADD", "ADD"]
    assert "Key 'First' unselected: 'Second' was selected" in history[1]

    card(page, "Second").get_by_role("button", name="Test").click()
    card(page, "Second").locator("text=OK: m1 answered in").wait_for()
    assert [r.key for r in upstream.requests] == [SECRETS["Second"]]
    page.evaluate("window.scrollTo(0, 0)")                # the history panel is sticky: shoot it at the top
    screenshot(page, "provider-keys.png")

    page.once("dialog", lambda dialog: dialog.accept())
    card(page, "First").get_by_role("button", name="Delete").click()
    card(page, "First").wait_for(state="detached")
    page.wait_for_selector("#provider-key-history :text(\"Deleted key 'First'\")")
    assert page.evaluate("window.sameDocument") is True
    assert all(secret not in page.content() for secret in SECRETS.values())

    page.reload()
    assert page.locator(".pkey-card").count() == 1 and card(page, "Second").locator(".badge-selected").is_visible()
