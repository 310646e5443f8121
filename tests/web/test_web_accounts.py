"""Accounts, sessions, CSRF, login throttling and security headers of the browser pages."""
import re

from conftest import make_user
from web_client import PASSWORD, web  # noqa: F401  (web is a fixture)

from extensions import db
from models import User


def roles(app):
    with app.app_context():
        return {u.username: u.role for u in db.session.scalars(db.select(User))}


def test_register_logs_in_and_first_account_is_admin(app, web):
    """The first registered account is the administrator; later ones are plain users."""
    alice = web()
    response = alice.register("alice")
    assert response.status_code == 302 and response.location.endswith("/keys")
    page = alice.get("/keys").get_data(as_text=True)
    assert "Log out alice (admin)" in page
    bob = web()
    bob.register("bob")
    assert "Log out bob</button>" in bob.get("/keys").get_data(as_text=True).replace("\n", "").replace("  ", "")
    assert roles(app) == {"alice": "admin", "bob": "user"}
    with app.app_context():
        assert db.session.scalar(db.select(User).filter_by(username="bob")).check_password(PASSWORD)


def test_the_admin_hint_shows_only_while_the_gateway_has_no_account(app):
    """After `flask users create --admin`, the pages stop promising the administrator role, and the
    next registration is told it is a plain user."""
    visitor = app.test_client()
    for path in ("/login", "/register"):
        assert "becomes its administrator" in visitor.get(path).get_data(as_text=True), path
    make_user(app, "root", role="admin")                         # what the CLI does
    for path in ("/login", "/register"):
        assert "becomes its administrator" not in visitor.get(path).get_data(as_text=True), path
    assert "New accounts are regular users" in visitor.get("/register").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', visitor.get("/register").get_data(as_text=True)).group(1)
    welcome = visitor.post("/register", data={"username": "bob", "password": PASSWORD, "confirm": PASSWORD,
                                              "csrf_token": token}, follow_redirects=True)
    assert "This is a user account: an administrator can grant you credits" in welcome.get_data(as_text=True)
    assert roles(app) == {"root": "admin", "bob": "user"}


def test_registration_rejects_bad_input(app, web):
    """Short passwords, mismatched confirmation and taken names are refused with a message."""
    web("alice")
    user = web()
    assert user.register("bob", password="short").status_code == 422
    assert user.register("bob", confirm="different-password").status_code == 422
    taken = user.register("alice")
    assert taken.status_code == 422 and "That username is taken." in taken.get_data(as_text=True)
    assert set(roles(app)) == {"alice"}


def test_login_logout_and_session_rotation(app, web):
    """Login clears whatever the session held before; logout is POST-only and ends the session."""
    web("alice")
    user = web()
    with user.client.session_transaction() as session:
        session["planted"] = "by an attacker"
    wrong = user.login("alice", password="wrong-password")
    assert wrong.status_code == 401 and "Wrong username or password." in wrong.get_data(as_text=True)
    response = user.login("alice")
    assert response.status_code == 302 and response.location.endswith("/chat")
    with user.client.session_transaction() as session:
        assert "planted" not in session and session["_user_id"]
    assert user.get("/keys").status_code == 200
    assert user.get("/logout").status_code == 405            # no GET changes state
    assert user.get("/keys").status_code == 200
    assert user.post("/logout", htmx=False).status_code == 302
    anonymous = user.get("/keys")
    assert anonymous.status_code == 302 and "/login" in anonymous.location


def test_logout_ends_the_session_even_for_a_copied_cookie(app, web):
    """The session cookie is only a pointer to a server-side login: a copy taken before logout
    (a stolen cookie) is refused after it, while the user's other logins stay signed in."""
    web("alice")
    laptop, phone = web(), web()
    laptop.login("alice")
    phone.login("alice")
    stolen = laptop.client.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/keys").status_code == 200
    assert laptop.post("/logout", htmx=False).status_code == 302
    refused = thief.get("/keys")
    assert refused.status_code == 302 and "/login" in refused.location
    assert phone.get("/keys").status_code == 200


def test_login_follows_only_local_next(app, web):
    web("alice")
    assert web().login("alice", next="/models").location.endswith("/models")
    assert web().login("alice", next="https://evil.example/").location.endswith("/chat")
    assert web().login("alice", next="//evil.example/x").location.endswith("/chat")


def test_login_is_throttled(app, web):
    """Ten login posts a minute per address are allowed; the eleventh gets 429."""
    web("alice")
    user = web()
    statuses = [user.login("alice", password="guess-%d" % i).status_code for i in range(10)]
    assert statuses == [401] * 10
    throttled = user.login("alice")
    assert throttled.status_code == 429 and 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert user.get("/login").status_code == 200                # only POSTs count


def test_cross_site_post_without_token_is_refused(app, web):
    """A form another site submits with the victim's cookie carries no token: 400, nothing changes."""
    alice = web("alice")
    forged = alice.client.post("/keys", data={"name": "attacker"}, headers={"Origin": "https://evil.example"})
    assert forged.status_code == 400
    wrong = alice.client.post("/keys", data={"name": "attacker", "csrf_token": "not-a-token"})
    assert wrong.status_code == 400
    assert alice.client.post("/logout").status_code == 400
    assert alice.client.post("/api/keys", json={"name": "attacker"}).status_code == 400
    assert "attacker" not in alice.get("/keys").get_data(as_text=True)
    assert alice.post("/keys", data={"name": "mine"}).status_code == 200


def test_api_routes_stay_csrf_free(app, web, api_key):
    """Header-authenticated API calls need no CSRF token (a cross-site page cannot set the header)."""
    response = app.test_client().post("/v1/chat/completions", headers={"Authorization": f"Bearer {api_key}"},
                                      json={"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200


def test_api_answers_neither_use_nor_set_the_session(app, web, api_key):
    """/v1 takes keys only: a browser's session cookie sent along is not read, refreshed or varied on."""
    carol = web("carol")
    assert carol.get("/keys").status_code == 200
    response = carol.client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {api_key}"},
                                 json={"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers and "Cookie" not in response.headers.get("Vary", "")
    assert carol.client.post("/v1/chat/completions", json={"model": "demo-chat", "messages": []}).status_code == 401
    assert "Log out carol" in carol.get("/keys").get_data(as_text=True)       # the browser session still works


def test_security_headers_on_every_response(app, web, api_key):
    alice = web("alice")
    for response in (alice.get("/chat"), alice.get("/keys"), app.test_client().get("/login"),
                     app.test_client().get("/v1/models", headers={"Authorization": f"Bearer {api_key}"})):
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "same-origin"


def test_pages_have_no_inline_script_and_vendor_files_are_served(app, web):
    """Every script is a vendored file from /static (CSP forbids inline script and CDNs)."""
    alice = web("alice")
    for path in ("/keys", "/models", "/chat", "/login"):
        html = alice.get(path, follow_redirects=True).get_data(as_text=True)
        scripts = re.findall(r"<script([^>]*)>", html)
        assert scripts and all('src="/static/' in attrs for attrs in scripts), scripts
        assert "style=" not in html
    for src in re.findall(r'(?:src|href)="(/static/[^"]+)"', alice.get("/keys").get_data(as_text=True)):
        with alice.get(src) as response:
            assert response.status_code == 200, src


def test_pages_require_login(app):
    client = app.test_client()
    for path in ("/chat", "/keys", "/models", "/chat/1", "/chat/messages/1/stream"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.location, path
    assert client.get("/", follow_redirects=False).location.endswith("/login")
    refused = client.post("/api/keys", json={"name": "x"}, headers={"X-CSRFToken": "x"})
    assert refused.status_code in (400, 401)
