"""/admin/users: disable/enable and promote/demote, never locking the administrators out."""
import pytest
from helpers import gateway_config
from web_client import web  # noqa: F401  (web is a fixture)

from conftest import make_key
from extensions import db
from models import User
from models.login_session import LoginSession
from models.user import AccessRefused, change_access


@pytest.fixture
def app(make_app, upstream):
    return make_app(gateway_config(upstream, ["m1"]))


def account(app, username):
    with app.app_context():
        return db.session.scalar(db.select(User).where(User.username == username))


def ask(app, key):
    return app.test_client().post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                  json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]})


def test_a_disabled_user_is_locked_out_of_pages_and_api_at_once_and_back_when_enabled(app, web):
    root, bob = web("root"), web("bob")
    bob_id = account(app, "bob").id
    key = make_key(app, bob_id)
    assert bob.get("/keys").status_code == 200 and ask(app, key).status_code == 200

    row = root.post(f"/admin/users/{bob_id}/status", data={"disabled": "1"})
    assert row.status_code == 200 and "bob is disabled" in row.get_data(as_text=True)
    assert bob.get("/keys").status_code == 302                       # the open session no longer counts
    assert ask(app, key).status_code == 401
    assert bob.login("bob").status_code == 401                       # and no new one can start
    with app.app_context():
        assert db.session.scalar(db.select(LoginSession).where(LoginSession.user_id == bob_id)) is None

    assert "Disable" in root.post(f"/admin/users/{bob_id}/status", data={"disabled": "0"}).get_data(as_text=True)
    assert ask(app, key).status_code == 200
    assert bob.get("/keys").status_code == 302                       # the old cookie stays dead: log in again
    bob.login("bob")
    assert bob.get("/keys").status_code == 200


def test_promote_then_demote_and_the_new_admin_sees_admin_pages(app, web):
    root, bob = web("root"), web("bob")
    bob_id = account(app, "bob").id
    assert bob.get("/admin/users").status_code == 403
    promoted = root.post(f"/admin/users/{bob_id}/role", data={"role": "admin"})
    assert "bob is an active admin" in promoted.get_data(as_text=True)
    assert bob.get("/admin/users").status_code == 200
    root.post(f"/admin/users/{bob_id}/role", data={"role": "user"})
    assert bob.get("/admin/users").status_code == 403 and account(app, "bob").role == "user"


def test_an_admin_may_not_demote_or_disable_themselves(app, web):
    root = web("root")
    root_id = account(app, "root").id
    for path, data in (("role", {"role": "user"}), ("status", {"disabled": "1"})):
        refused = root.post(f"/admin/users/{root_id}/{path}", data=data)
        assert refused.status_code == 422 and "cannot demote or disable yourself" in refused.get_data(as_text=True)
    assert (account(app, "root").role, account(app, "root").disabled) == ("admin", False)


def test_the_last_active_admin_is_never_demoted_or_disabled(app, web):
    """With two admins, one may demote the other; the survivor is then the last one, and stays."""
    root = web("root")
    web("bob")
    root_id, bob_id = account(app, "root").id, account(app, "bob").id
    root.post(f"/admin/users/{bob_id}/role", data={"role": "admin"})
    assert root.post(f"/admin/users/{bob_id}/status", data={"disabled": "1"}).status_code == 200
    with app.app_context():                    # a disabled admin does not count: root is the last active one
        with pytest.raises(AccessRefused, match="last active administrator"):
            change_access(db.session.get(User, root_id), actor_id=bob_id, role="user")
        db.session.rollback()
    assert account(app, "root").role == "admin"


def test_role_and_status_posts_need_the_csrf_token_and_an_admin(app, web):
    root, bob = web("root"), web("bob")
    root_id, bob_id = account(app, "root").id, account(app, "bob").id
    assert root.client.post(f"/admin/users/{bob_id}/status", data={"disabled": "1"}).status_code == 400
    assert bob.post(f"/admin/users/{root_id}/role", data={"role": "user"}).status_code == 403
    assert bob.post(f"/admin/users/{bob_id}/role", data={"role": "admin"}).status_code == 403
    assert account(app, "bob").role == "user" and not account(app, "bob").disabled


def test_without_javascript_a_change_redirects_back_with_a_flash(app, web):
    root = web("root")
    web("bob")
    response = root.post(f"/admin/users/{account(app, 'bob').id}/status", data={"disabled": "1"}, htmx=False)
    assert response.status_code == 302 and response.location.endswith("/admin/users")
    assert "bob is disabled" in root.get("/admin/users").get_data(as_text=True)


def test_each_user_row_links_to_their_usage(app, web):
    root = web("root")
    web("bob")
    assert f'href="/usage?user={account(app, "bob").id}"' in root.get("/admin/users").get_data(as_text=True)


def test_a_session_of_an_account_disabled_elsewhere_stops_counting(app, web):
    """Disabled outside the page (the database, a script), with the login row still there: the cookie is refused
    (User.is_active is False, and flask-login's UserMixin counts an inactive user as not authenticated)."""
    web("root")
    bob = web("bob")
    with app.app_context():
        db.session.scalar(db.select(User).where(User.username == "bob")).disabled = True
        db.session.commit()
        assert db.session.scalar(db.select(LoginSession).where(LoginSession.user_id == account(app, "bob").id))
    assert bob.get("/keys").status_code == 302
    assert bob.client.get("/api/keys").status_code == 401
