"""The pages on a phone: nothing wider than the screen, and every navigation link reachable through the menu."""

import pytest
import requests
from browser_fixtures import PHONE, base_url, browser, phone, register, screenshot  # noqa: F401  (fixtures)
from conftest import make_key
from helpers import gateway_config

from extensions import db
from models import RequestLog, User, credit

PAGES = ("/chat", "/keys", "/provider-keys", "/credits", "/usage", "/models", "/admin/users", "/admin/requests",
         "/admin/codes", "/admin/activity", "/admin/upstreams", "/no-such-page")
NARROWEST = 360


@pytest.fixture
def app(make_app, upstream):
    return make_app(gateway_config(upstream, {"a-model-with-a-rather-long-name-for-a-phone": {
        "provider": "openai", "input_per_mtok": 1.5, "output_per_mtok": 4.0}}))


def fits(page):
    """No horizontal scroll: the document is no wider than the window."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def some_history(app, base_url):
    """A paid request through the API, so /usage, /credits and /admin/requests have rows to lay out."""
    with app.app_context():
        root_id = db.session.scalar(db.select(User.id).where(User.username == "root"))
        credit.grant(root_id, 12_490_401)
        db.session.commit()
    key = make_key(app, root_id, name="a key with a long name to see how the card wraps")
    answer = requests.post(base_url + "/v1/chat/completions", timeout=10, headers={"Authorization": f"Bearer {key}"},
                           json={"model": "a-model-with-a-rather-long-name-for-a-phone",
                                 "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200


def test_every_page_fits_a_phone_and_the_menu_reaches_every_link(phone, base_url, app):
    register(phone, base_url, "root")
    some_history(app, base_url)
    with app.app_context():
        detail = f"/admin/requests/{db.session.scalar(db.select(db.func.max(RequestLog.id)))}"
    for width in (NARROWEST, PHONE["width"]):
        phone.set_viewport_size({"width": width, "height": PHONE["height"]})
        for path in (*PAGES, detail):
            phone.goto(base_url + path)
            assert fits(phone), (path, width, phone.evaluate("document.documentElement.scrollWidth"))
    for width in (1024, 1280):                                        # the menu's two sides of its breakpoint
        phone.set_viewport_size({"width": width, "height": PHONE["height"]})
        assert fits(phone), width
    phone.set_viewport_size(PHONE)
    phone.goto(base_url + "/credits")
    screenshot(phone, "credits-phone.png")

    menu = phone.locator(".site-menu > summary")
    for name, lands_on in (("Credits", "/credits"), ("Admin", "/admin/users"), ("Provider keys", "/provider-keys")):
        phone.goto(base_url + "/keys")
        assert not phone.get_by_role("link", name=name).is_visible()          # collapsed until asked for
        menu.click()
        link = phone.get_by_role("link", name=name)
        box = link.bounding_box()
        assert link.is_visible() and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], name
        link.click()
        phone.wait_for_url(base_url + lands_on)
    menu.click()
    log_out = phone.get_by_role("button", name="Log out root (admin)")
    box = log_out.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    log_out.click()
    phone.wait_for_url(base_url + "/login")
    for path in ("/login", "/register"):
        phone.goto(base_url + path)
        assert fits(phone), path


def test_a_missing_page_is_styled_and_keeps_the_navigation(phone, base_url):
    register(phone, base_url, "root")
    answer = phone.goto(base_url + "/keys/999999/nothing-here")
    assert answer.status == 404
    assert phone.get_by_role("heading", name="Page not found").is_visible()
    phone.locator(".site-menu > summary").click()
    phone.get_by_role("link", name="Keys", exact=True).click()
    phone.wait_for_url(base_url + "/keys")
