"""Each worker caches key lookups for at most a second: a revoked key, or a disabled user, is
refused by every worker within that second, and at once by the one that made the change."""
import time

from blueprints.api.auth import KEY_CACHE_TTL_S
from conftest import make_key, make_user
from extensions import db
from models import ApiKey, User


def auth(raw):
    return {"Authorization": f"Bearer {raw}"}


def test_revocation_through_one_worker_reaches_another_within_a_second(make_app):
    """Two apps on one database stand for two workers (or instances): both have the key cached;
    revoking it through one refuses it there at once and in the other after the cache's TTL."""
    first, second = make_app(), make_app()
    alice = make_user(first)
    key, manager = make_key(first, alice), make_key(first, alice, "manager")
    with first.app_context():
        key_id = db.session.scalar(db.select(ApiKey.id).where(ApiKey.name == "default"))
    for app in (first, second):
        assert app.test_client().get("/api/user", headers=auth(key)).status_code == 200    # now cached

    revoked = first.test_client().delete(f"/api/keys/{key_id}", headers=auth(manager))
    assert revoked.get_json()["success"] is True
    assert first.test_client().get("/api/user", headers=auth(key)).status_code == 401

    time.sleep(KEY_CACHE_TTL_S)
    assert second.test_client().get("/api/user", headers=auth(key)).status_code == 401


def test_a_user_disabled_elsewhere_is_refused_within_a_second(make_app):
    """The cached row carries the user's `disabled`: disabling the user in one app reaches the other's cache."""
    first, second = make_app(), make_app()
    alice = make_user(first)
    key = make_key(first, alice)
    assert second.test_client().get("/api/user", headers=auth(key)).status_code == 200
    with first.app_context():
        db.session.get(User, alice).disabled = True
        db.session.commit()

    time.sleep(KEY_CACHE_TTL_S)
    assert second.test_client().get("/api/user", headers=auth(key)).status_code == 401


def test_a_key_is_read_once_per_ttl_per_worker(make_app, monkeypatch):
    """Within the TTL the worker answers from its cache; once the entry is older, it reads the row
    anew. The change here is a bulk UPDATE that no ORM session of the app sees flushing (as another
    process's would be), and the TTL is set by hand so that nothing depends on the clock."""
    from blueprints.api import auth as auth_module

    app = make_app()
    key = make_key(app, make_user(app))
    client = app.test_client()
    monkeypatch.setattr(auth_module, "KEY_CACHE_TTL_S", 3600.0)
    assert client.get("/api/user", headers=auth(key)).status_code == 200
    with app.app_context():
        db.session.execute(db.update(ApiKey).values(status="revoked"))
        db.session.commit()
    assert client.get("/api/user", headers=auth(key)).status_code == 200      # from the cache

    monkeypatch.setattr(auth_module, "KEY_CACHE_TTL_S", 0.0)
    assert client.get("/api/user", headers=auth(key)).status_code == 401
