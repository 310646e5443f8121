"""The web side of rate limits: a key's requests per minute on the /keys page, and the per-address
limit on login posts (the API side is tests/api/test_rate_limits.py)."""
import re

from web_client import WebUser, web  # noqa: F401  (web is a fixture)

from extensions import db
from helpers import gateway_config
from models import ApiKey


def test_the_keys_page_shows_and_edits_the_rpm(app, web):
    alice = web("alice")
    html = alice.post("/keys", data={"name": "laptop"}).get_data(as_text=True)
    key_id = int(re.search(r'id="key-(\d+)"', html).group(1))
    assert "Default request rate" in html and 'name="rpm"' in html
    saved = alice.post(f"/keys/{key_id}", data={"name": "laptop", "rpm": "5"}).get_data(as_text=True)
    assert "5 requests per minute" in saved and 'name="rpm" value="5"' in saved
    for bad in ("0", "abc", "1.5", "2000000"):
        refused = alice.post(f"/keys/{key_id}", data={"name": "laptop", "rpm": bad})
        assert refused.status_code == 422 and "Requests per minute" in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(ApiKey, key_id).rpm == 5
    alice.post(f"/keys/{key_id}", data={"name": "laptop", "rpm": ""})
    with app.app_context():
        assert db.session.get(ApiKey, key_id).rpm is None


def test_login_posts_count_against_the_address_limit_too(make_app, upstream):
    """ip_per_minute applies to login posts on top of LOGIN_RATE_LIMIT (here the tighter one)."""
    app = make_app(gateway_config(upstream, ["m1"], limits={"ip_per_minute": 2}))
    user = WebUser(app.test_client())
    statuses = [user.login("nobody").status_code for _ in range(3)]
    assert 429 not in statuses[:2] and statuses[2] == 429
    refused = user.login("nobody")
    assert int(refused.headers["Retry-After"]) >= 1
    assert (refused.headers["X-RateLimit-Limit"], refused.headers["X-RateLimit-Remaining"]) == ("2", "0")
