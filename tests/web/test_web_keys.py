"""The /keys page and POST /api/keys: shown once, masked after, owner-scoped, enforced by the API."""
import re
from datetime import timedelta

from web_client import web  # noqa: F401  (web is a fixture)

from extensions import db
from models import ApiKey
from models.user import utcnow

RAW_KEY = re.compile(r"sk-[A-Za-z0-9_\-]{32,}")


def create(user, name="laptop"):
    """Create a key through the page (htmx); returns (raw key, key id)."""
    response = user.post("/keys", data={"name": name})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    raw = RAW_KEY.search(html).group(0)
    key_id = int(re.search(r'id="key-(\d+)"', html).group(1))
    return raw, key_id


def status_of(client, raw):
    return client.get("/v1/models", headers={"Authorization": f"Bearer {raw}"}).status_code


def test_created_key_is_shown_once_then_only_masked(app, web):
    alice = web("alice")
    empty = alice.get("/keys").get_data(as_text=True)
    assert "You have no API keys yet" in empty
    raw, key_id = create(alice)
    listing = alice.get("/keys").get_data(as_text=True)
    assert raw not in listing and not RAW_KEY.search(listing)
    with app.app_context():
        row = db.session.get(ApiKey, key_id)
        assert row.masked in listing and row.key_hash != raw and raw not in row.masked
    assert re.search(r"<p id=\"no-keys\"[^>]* hidden>", listing)           # kept hidden: the oob swap needs its target
    assert status_of(app.test_client(), raw) == 200


def test_plain_form_post_shows_the_key_on_the_page_without_redirecting(app, web):
    """Without htmx the page itself shows the key (a redirect would need it stored somewhere)."""
    alice = web("alice")
    response = alice.post("/keys", data={"name": "no-js"}, htmx=False)
    assert response.status_code == 200 and RAW_KEY.search(response.get_data(as_text=True))
    assert not RAW_KEY.search(alice.get("/keys").get_data(as_text=True))


def test_disable_enable_and_revoke_are_enforced_by_the_api(app, web):
    alice = web("alice")
    raw, key_id = create(alice)
    api = app.test_client()
    disabled = alice.post(f"/keys/{key_id}/toggle")
    assert "badge-disabled" in disabled.get_data(as_text=True)
    assert status_of(api, raw) == 401
    alice.post(f"/keys/{key_id}/toggle")
    assert status_of(api, raw) == 200
    revoked = alice.post(f"/keys/{key_id}/revoke")
    assert revoked.status_code == 200 and revoked.get_data(as_text=True) == ""
    assert status_of(api, raw) == 401
    assert f'id="key-{key_id}"' not in alice.get("/keys").get_data(as_text=True)
    assert alice.post(f"/keys/{key_id}/toggle").status_code == 404      # revoked keys stay revoked


def test_rename_expiry_and_limits_are_saved_and_enforced(app, web):
    alice = web("alice")
    raw, key_id = create(alice)
    last_day = (utcnow() + timedelta(days=3)).strftime("%Y-%m-%d")
    saved = alice.post(f"/keys/{key_id}", data={"name": "renamed", "expires_on": last_day,
                                                "models": ["demo-mini"], "allow_ips": "127.0.0.1, 10.1.2.3/8"})
    html = saved.get_data(as_text=True)
    assert saved.status_code == 200 and "renamed" in html and f"Valid through {last_day}" in html
    with app.app_context():
        row = db.session.get(ApiKey, key_id)
        assert (row.name, row.model_limits, row.allow_ips) == ("renamed", ["demo-mini"], ["127.0.0.1/32", "10.0.0.0/8"])
        assert row.expires_at.strftime("%Y-%m-%d") > last_day
    api = app.test_client()
    body = {"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}]}
    refused = api.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {raw}"})
    assert refused.status_code == 403                                  # model allow-list
    allowed = api.post("/v1/chat/completions", json={**body, "model": "demo-mini"},
                       headers={"Authorization": f"Bearer {raw}"})
    assert allowed.status_code == 200
    alice.post(f"/keys/{key_id}", data={"name": "renamed", "allow_ips": "192.0.2.0/24"})
    assert status_of(api, raw) == 403                                  # 127.0.0.1 is no longer allowed
    with app.app_context():
        db.session.get(ApiKey, key_id).expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    alice.post(f"/keys/{key_id}", data={"name": "renamed"})             # clears expiry and limits
    assert status_of(api, raw) == 200


def test_invalid_limits_are_refused_with_a_message(app, web):
    alice = web("alice")
    _, key_id = create(alice)
    yesterday = (utcnow() - timedelta(days=2)).strftime("%Y-%m-%d")
    cases = [({"allow_ips": "10.0.0.300"}, "is not an IP address"), ({"allow_ips": "example.com"}, "is not an IP"),
             ({"models": ["no-such-model"]}, "Unknown model"), ({"expires_on": yesterday}, "today or later"),
             ({"expires_on": "soon"}, "must be a date"), ({"name": "x" * 101}, "at most 100")]
    for data, message in cases:
        response = alice.post(f"/keys/{key_id}", data={"name": "k", **data})
        assert response.status_code == 422 and message in response.get_data(as_text=True), data
    with app.app_context():
        row = db.session.get(ApiKey, key_id)
        assert (row.name, row.allow_ips, row.model_limits, row.expires_at) == ("laptop", [], [], None)


def test_another_users_key_is_not_found(app, web):
    alice, bob = web("alice"), web("bob")
    raw, key_id = create(alice)
    for path in (f"/keys/{key_id}", f"/keys/{key_id}/toggle", f"/keys/{key_id}/revoke"):
        assert bob.post(path, data={"name": "stolen"}).status_code == 404, path
    assert f'id="key-{key_id}"' not in bob.get("/keys").get_data(as_text=True)
    assert status_of(app.test_client(), raw) == 200
    assert bob.post("/keys/999999/toggle").status_code == 404


def test_api_keys_endpoint_creates_a_key_for_the_session(app, web):
    alice = web("alice")
    response = alice.post("/api/keys", json={"name": "script"}, htmx=False)
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"id", "name", "key"} and body["name"] == "script" and RAW_KEY.fullmatch(body["key"])
    assert status_of(app.test_client(), body["key"]) == 200
    assert body["key"] not in alice.get("/keys").get_data(as_text=True)


def test_api_keys_endpoint_errors_use_the_detail_shape(app, web):
    alice = web("alice")
    bad = alice.post("/api/keys", data="[1, 2]", content_type="application/json", htmx=False)
    assert bad.status_code == 400 and bad.get_json()["error_type"] == "invalid_json"
    long_name = alice.post("/api/keys", json={"name": "x" * 101}, htmx=False)
    assert long_name.get_json() == {"detail": "The name may have at most 100 characters.", "code": 400,
                                    "error_type": "invalid_parameter"}
    no_token = alice.client.post("/api/keys", json={"name": "x"})
    assert no_token.status_code == 400 and set(no_token.get_json()) == {"detail", "code", "error_type"}
    anonymous = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', anonymous.get("/login").get_data(as_text=True)).group(1)
    refused = anonymous.post("/api/keys", json={"name": "x"}, headers={"X-CSRFToken": token})
    assert refused.status_code == 401 and refused.get_json()["error_type"] == "not_authenticated"


def test_a_refused_save_shows_every_field_as_typed_and_the_fix_stores_them(app, web):
    """The issue-13 walk: tick a model, rename, IP `bad`, Save → the error, with the tick, the name and the IPs kept."""
    alice = web("alice")
    _, key_id = create(alice)
    typed = {"name": "renamed", "models": ["demo-mini"], "allow_ips": "10.0.0.1\nbad", "rpm": "7"}
    for htmx in (True, False):
        refused = alice.post(f"/keys/{key_id}", data=typed, htmx=htmx)
        html = refused.get_data(as_text=True)
        assert refused.status_code == 422 and "&#39;bad&#39; is not an IP address" in html
        assert 'name="name" value="renamed"' in html and 'name="rpm" value="7"' in html
        assert re.search(r'value="demo-mini"\s+checked', html) and not re.search(r'value="demo-chat"\s+checked', html)
        assert ">10.0.0.1\nbad</textarea>" in html and "<details open>" in html
    with app.app_context():
        assert db.session.get(ApiKey, key_id).name == "laptop"        # nothing was saved
    saved = alice.post(f"/keys/{key_id}", data={**typed, "allow_ips": "10.0.0.1"})
    assert saved.status_code == 200 and "Models: demo-mini" in saved.get_data(as_text=True)
    with app.app_context():
        row = db.session.get(ApiKey, key_id)
        assert (row.name, row.model_limits, row.allow_ips, row.rpm) == ("renamed", ["demo-mini"], ["10.0.0.1/32"], 7)
