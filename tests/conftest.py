"""Fixtures: a fresh app and database per test, real fake upstreams, users and keys."""
import pytest

from app import create_app
from extensions import db
from fake_upstream import FakeUpstream
from gateway import config as gateway_config
from models import ApiKey, User


@pytest.fixture
def make_app(tmp_path):
    """Build an app on a temp SQLite database from a gateway config mapping (TOML-shaped)."""
    def build(gateway=None, **overrides):
        settings = gateway_config.parse(gateway or {}, {})
        return create_app({
            "TESTING": True, "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'gateway.sqlite'}",
            "GATEWAY_SETTINGS": settings, **overrides,
        })
    return build


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def upstream():
    with FakeUpstream() as server:
        yield server


def make_user(app, username="alice", password="correct-horse", role="user"):
    with app.app_context():
        user = User(username=username, role=role)
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
        return user.id


def make_key(app, user_id, name="default", **fields):
    """Issue a gateway key for `user_id`; returns the raw `sk-…` key."""
    with app.app_context():
        user = db.session.get(User, user_id)
        row, raw = ApiKey.issue(user, name)
        for field, value in fields.items():
            setattr(row, field, value)
        db.session.commit()
        return raw


@pytest.fixture
def api_key(app):
    return make_key(app, make_user(app))


@pytest.fixture
def auth(api_key):
    return {"Authorization": f"Bearer {api_key}"}
