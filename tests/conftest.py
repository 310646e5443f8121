"""Fixtures: a fresh app and database per test, real fake upstreams, users and keys."""
import os
import shutil
import sqlite3

import pytest

from app import create_app
from extensions import db
from fake_upstream import FakeUpstream
from gateway import config as gateway_config
from models import ApiKey, User

TEST_ENCRYPTION_KEY = "mNWF5m0f2zcz1V9sOYYdO1pq0iXeAbqsXtt3pY4vA4A="     # tests only; never a real key


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory):
    """A SQLite database at the migrations' head, made once: each test starts from a copy.

    Copying the file costs well under a millisecond, the migrations from empty some 25 ms an
    app, more with each new revision; tests/ops/test_migrations.py runs them from empty.
    """
    path = tmp_path_factory.mktemp("migrated") / "gateway.sqlite"
    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}",
                      "GATEWAY_SETTINGS": gateway_config.parse({}, {}), "GATEWAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY})
    with app.app_context():
        db.engine.dispose()
    with sqlite3.connect(path) as connection:      # fold the WAL into the file, so the file alone is the database
        connection.execute("PRAGMA journal_mode=DELETE")
    connection.close()
    return path


@pytest.fixture
def make_app(tmp_path, migrated_sqlite):
    """Build an app on a temp SQLite database from a gateway config mapping (TOML-shaped)."""
    database = tmp_path / "gateway.sqlite"

    def build(gateway=None, **overrides):
        settings = gateway_config.parse(gateway or {}, {})
        if "SQLALCHEMY_DATABASE_URI" not in overrides and not database.exists():
            shutil.copyfile(migrated_sqlite, database)
        return create_app({
            "TESTING": True, "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}",
            "GATEWAY_SETTINGS": settings, "GATEWAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY, **overrides,
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


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the tests that need one (skipped only where it is not installed)."""
    from servers import postgres_bin, postgres_server

    if postgres_bin() is None:
        if os.environ.get("GATEWAY_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is required here (apt-get install postgresql)")
        pytest.skip("PostgreSQL server binaries are not installed")
    with postgres_server() as url:
        yield url
