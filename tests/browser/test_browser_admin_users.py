"""/admin/users in a real browser: disable, enable and promote swap the user's row in place (htmx, CSRF header)."""
import pytest
from browser_fixtures import base_url, browser, page, register  # noqa: F401  (fixtures)
from helpers import gateway_config

from conftest import make_user


@pytest.fixture
def app(make_app, upstream):
    return make_app(gateway_config(upstream, ["m1"]))


def test_disable_enable_and_promote_swap_the_row(page, base_url, app):
    register(page, base_url, "root")
    bob_id = make_user(app, "bob")
    page.goto(base_url + "/admin/users")
    page.evaluate("window.notReloaded = true")
    assert page.locator("#user-1 button:has-text('Demote')").count() == 0      # never oneself
    page.on("dialog", lambda dialog: dialog.accept())                          # hx-confirm

    row = page.locator(f"#user-{bob_id}")
    row.locator("button:has-text('Disable')").click()
    page.wait_for_selector(f"#user-{bob_id} >> text=bob is disabled")
    assert row.locator(".badge-disabled").is_visible()
    row.locator("button:has-text('Enable')").click()
    page.wait_for_selector(f"#user-{bob_id} >> text=bob is an active user")
    row.locator("button:has-text('Promote')").click()
    page.wait_for_selector(f"#user-{bob_id} >> text=bob is an active admin")
    assert row.locator("button:has-text('Demote')").is_visible()
    assert page.evaluate("window.notReloaded") is True
