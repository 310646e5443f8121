"""Forms in a real browser keep what the user typed when the server refuses it, and htmx logs no errors."""

import pytest
import sqlalchemy as sa
from browser_fixtures import base_url, browser, page, register  # noqa: F401  (fixtures)
from helpers import gateway_config

from extensions import db
from models import ApiKey


@pytest.fixture
def app(make_app, upstream):
    return make_app(gateway_config(upstream, {"m1": {"provider": "openai"}, "m2": {"provider": "openai"},
                                             "c1": {"provider": "anthropic"}}))


def test_the_key_editor_keeps_every_field_after_an_error_and_saves_the_ticked_model(page, base_url, app):
    """The issue-13 walk: open the editor, tick a model, rename, IP `bad`, Save; then fix the IP and Save."""
    register(page, base_url)
    page.fill("input[name=name]", "laptop")
    page.click("button:has-text('Create key')")
    page.wait_for_selector(".key-card:has-text('laptop')")
    page.reload()              # now #no-keys starts hidden: the next create must not make htmx log
    page.fill("form.create-key input[name=name]", "ci")    # oobErrorNoTarget (the page fixture fails on it)
    page.click("button:has-text('Create key')")
    page.wait_for_selector(".key-card:has-text('ci')")

    card = page.locator(".key-card", has=page.locator(".key-name", has_text="laptop"))
    card.locator("summary").click()
    card.locator("input[name=name]").fill("laptop-2")
    card.locator("input[name=models][value=m2]").check()
    card.locator("textarea[name=allow_ips]").fill("bad")
    card.get_by_role("button", name="Save").click()
    page.wait_for_selector("text='bad' is not an IP address or CIDR network.")

    card = page.locator(".key-card", has=page.get_by_text("'bad' is not an IP address"))
    assert card.locator("details").get_attribute("open") is not None
    assert card.locator("input[name=name]").input_value() == "laptop-2"
    assert card.locator("input[name=models][value=m2]").is_checked()
    assert not card.locator("input[name=models][value=m1]").is_checked()
    assert card.locator("textarea[name=allow_ips]").input_value() == "bad"

    card.locator("textarea[name=allow_ips]").fill("127.0.0.1")
    card.get_by_role("button", name="Save").click()
    page.wait_for_selector(".key-card:has-text('Models: m2')")
    with app.app_context():
        row = db.session.scalar(sa.select(ApiKey).where(ApiKey.name == "laptop-2"))
        assert (row.model_limits, row.allow_ips) == (["m2"], ["127.0.0.1/32"])


def test_the_provider_stays_chosen_after_an_add(page, base_url):
    register(page, base_url)
    page.goto(base_url + "/provider-keys")
    form = page.locator("#add-provider-key")
    form.locator("select[name=provider_name]").select_option("anthropic")
    for name in ("team", "personal"):
        form.locator("input[name=name]").fill(name)
        form.locator("input[name=api_key]").fill(f"sk-ant-{name}-0000")
        form.get_by_role("button", name="Add key").click()
        page.wait_for_selector(f"text=Key “{name}” added for anthropic.")
        assert page.locator("#add-provider-key select[name=provider_name]").input_value() == "anthropic"
