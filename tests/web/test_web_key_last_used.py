"""A key's "Last used": written with the request's log row, at most once a minute per key and worker."""
from datetime import datetime, timezone

import pytest
from helpers import gateway_config
from web_client import web  # noqa: F401  (web is a fixture)

from blueprints.api.records import TOUCH_KEY_EVERY_S
from conftest import make_key, make_user
from extensions import db
from models import ApiKey, User

LONG_AGO = datetime(2020, 1, 1, 12, 0)


@pytest.fixture
def app(make_app, upstream):
    return make_app(gateway_config(upstream, ["m1"]))


def ask(app, key):
    response = app.test_client().post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                      json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    return response


def stamp(app, key_id):
    with app.app_context():
        return db.session.get(ApiKey, key_id).last_used_at


def set_stamp(app, key_id, moment):
    with app.app_context():
        db.session.get(ApiKey, key_id).last_used_at = moment
        db.session.commit()


def test_the_first_request_stamps_the_key_and_the_pages_show_it(app, web):
    alice = web("alice")
    with app.app_context():
        alice_id = db.session.scalar(db.select(User.id).where(User.username == "alice"))
    key = make_key(app, alice_id, name="laptop")
    assert "Never used" in alice.get("/keys").get_data(as_text=True)
    ask(app, key)
    with app.app_context():
        key_id = db.session.scalar(db.select(ApiKey.id))
    used = stamp(app, key_id)
    assert used is not None
    assert f"Last used {used:%Y-%m-%d %H:%M} UTC" in alice.get("/keys").get_data(as_text=True)
    listed = app.test_client().get("/api/keys", headers={"Authorization": f"Bearer {key}"}).get_json()
    assert listed["data"][0]["accessed_time"] == int(used.replace(tzinfo=timezone.utc).timestamp())


def test_within_a_minute_the_stamp_is_not_written_again_and_after_it_is(app):
    """The second request inside the minute leaves the stamp alone (no UPDATE); once this worker's
    memory of the last write is a minute old, the next request writes it again."""
    key = make_key(app, make_user(app))
    ask(app, key)
    with app.app_context():
        key_id = db.session.scalar(db.select(ApiKey.id))
    set_stamp(app, key_id, LONG_AGO)             # what a second write would overwrite

    ask(app, key)
    assert stamp(app, key_id) == LONG_AGO

    app.extensions["keys_touched"][key_id] -= TOUCH_KEY_EVERY_S     # this worker last wrote it a minute ago
    ask(app, key)
    assert stamp(app, key_id) > LONG_AGO

