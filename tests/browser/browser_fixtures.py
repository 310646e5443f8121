"""Browser fixtures: Debian's chromium driven by Playwright against the app on a live port.

Imported by the browser tests (not a conftest.py: that would shadow the root `conftest` module
that other test folders import helpers from).
"""
import os
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import live_server

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct-horse-battery"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("GATEWAY_REQUIRE_BROWSER") == "1":         # CI must not pass by skipping
            pytest.fail(f"GATEWAY_REQUIRE_BROWSER=1 but {CHROMIUM} is not installed")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


PHONE = {"width": 390, "height": 844}


@contextmanager
def watched_page(browser, viewport):
    """A fresh context and page; console errors (CSP violations included) fail the test at the end.

    "Failed to load resource" is left out: the tests provoke 4xx answers (422 on a bad form) on purpose.
    """
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    errors = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(10_000)
    yield page
    context.close()
    assert errors == [], errors


@pytest.fixture
def page(browser):
    """A desktop-sized page (1280×860) that fails the test on any console error."""
    with watched_page(browser, {"width": 1280, "height": 860}) as desktop:
        yield desktop


@pytest.fixture
def phone(browser):
    """A phone-sized page (390×844, an iPhone 12-14) that fails the test on any console error."""
    with watched_page(browser, PHONE) as small:
        yield small


@pytest.fixture
def base_url(app):
    """The test module's `app` served on a live 127.0.0.1 port."""
    with live_server(app) as url:
        yield url


def register(page, base_url, username="alice"):
    """Create an account through the form; a new account lands on /keys."""
    page.goto(base_url + "/register")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=confirm]", PASSWORD)
    page.click("button:has-text('Create account')")
    page.wait_for_url(base_url + "/keys")


def screenshot(page, name):
    """Save the whole page under docs/screenshots (the README shows them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
