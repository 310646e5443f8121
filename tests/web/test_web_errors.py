"""Error pages: styled and inside the navigation for people, JSON in the documented shapes for programs."""
import pytest
from helpers import gateway_config
from web_client import WebUser, web  # noqa: F401  (web is a fixture)

NAV_LINKS = ('href="/keys"', 'href="/credits"', 'href="/provider-keys"')


def page_of(response):
    html = response.get_data(as_text=True)
    assert response.mimetype == "text/html" and "/static/app.css" in html and 'class="error-page"' in html
    return html


def test_a_missing_page_has_the_layout_and_the_signed_in_navigation(app, web):
    alice = web("alice")
    missing = alice.get("/no-such-page")
    assert missing.status_code == 404
    html = page_of(missing)
    assert "Page not found" in html and all(link in html for link in NAV_LINKS) and "Log out alice" in html


def test_an_unknown_owned_object_is_a_404_page(app, web):
    alice = web("alice")
    refused = alice.post("/keys/999999", data={"name": "x"}, htmx=False)
    assert refused.status_code == 404 and "Page not found" in page_of(refused)


def test_a_page_only_admins_may_open_is_a_403_page_with_the_navigation(app, web):
    web("root")
    bob = web("bob")
    refused = bob.get("/admin/users")
    assert refused.status_code == 403
    html = page_of(refused)
    assert "Not allowed" in html and all(link in html for link in NAV_LINKS) and 'href="/admin"' not in html


def test_a_logged_out_visitor_gets_the_page_with_log_in_links(app):
    html = page_of(app.test_client().get("/nowhere"))
    assert 'href="/login"' in html and 'href="/register"' in html and "Log out" not in html


def test_a_wrong_method_is_a_405_page_that_keeps_the_allow_header(app, web):
    alice = web("alice")
    refused = alice.get("/keys/1/revoke")
    assert refused.status_code == 405 and "POST" in refused.headers["Allow"]
    assert "Not allowed here" in page_of(refused)


def test_too_many_logins_is_a_429_page_that_keeps_retry_after(make_app, upstream):
    app = make_app(gateway_config(upstream, ["m1"], limits={"ip_per_minute": 1}))
    user = WebUser(app.test_client())
    user.login("nobody")
    refused = user.login("nobody")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    html = page_of(refused)
    assert "Too many requests" in html and "try again in" in html        # the limiter's own words, with the wait


def test_an_unexpected_failure_is_a_500_page(make_app):
    app = make_app()
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/explode")
    def explode():
        raise RuntimeError("boom with secret sk-live-123")

    failed = app.test_client().get("/explode")
    assert failed.status_code == 500
    html = page_of(failed)
    assert "Something went wrong" in html and "sk-live-123" not in html and "boom" not in html


@pytest.mark.parametrize(("method", "path", "status"), [
    ("get", "/v1/no-such-endpoint", 404), ("get", "/v1/chat/completions", 405),
    ("get", "/api/v1/no-such-endpoint", 404),
])
def test_the_api_families_still_answer_json(app, method, path, status):
    response = getattr(app.test_client(), method)(path)
    assert response.status_code == status and response.is_json
    body = response.get_json()
    assert "error" in body or "detail" in body
    assert "<html" not in response.get_data(as_text=True)
