"""Fixtures: a fresh app and database per test, real fake upstreams, users and keys."""
import itertools
import os
import shutil
import sqlite3

import pytest
import sqlalchemy as sa

from app import create_app
from extensions import db
from fake_upstream import FakeUpstream
from gateway import config as gateway_config
from models import ApiKey, User
from servers import create_database, drop_database

TEST_ENCRYPTION_KEY = "mNWF5m0f2zcz1V9sOYYdO1pq0iXeAbqsXtt3pY4vA4A="     # tests only; never a real key

# GATEWAY_TEST_DATABASE=postgresql runs the suite on PostgreSQL (a database per test on one
# throwaway server); unset, it runs on SQLite files. CI runs it both ways.
ON_POSTGRESQL = os.environ.get("GATEWAY_TEST_DATABASE") == "postgresql"
DATABASE_NUMBERS = itertools.count(1)
sqlite_only = pytest.mark.skipif(ON_POSTGRESQL, reason="about SQLite itself: runs in the SQLite pass")


def app_config(database_url, settings=None, **overrides):
    """The config mapping every test app starts from."""
    return {"TESTING": True, "SECRET_KEY": "test-secret", "SQLALCHEMY_DATABASE_URI": database_url,
            "GATEWAY_SETTINGS": gateway_config.parse({}, {}) if settings is None else settings,
            "GATEWAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY, **overrides}


def dispose(app):
    """Close the app's pooled connections (a test's PostgreSQL database can then be dropped)."""
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def instance_folder(tmp_path_factory):
    """Test apps keep their instance files (such as a server database's health state file, one per
    test database) in a temp folder, never in the checkout's instance/."""
    patch = pytest.MonkeyPatch()
    patch.setenv("GATEWAY_INSTANCE_PATH", str(tmp_path_factory.mktemp("instance")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory):
    """A SQLite database at the migrations' head, made once: each test starts from a copy.

    Copying the file costs well under a millisecond, the migrations from empty some 25 ms an
    app, more with each new revision; tests/ops/test_migrations.py runs them from empty.
    """
    path = tmp_path_factory.mktemp("migrated") / "gateway.sqlite"
    dispose(create_app(app_config(f"sqlite:///{path}")))
    with sqlite3.connect(path) as connection:      # fold the WAL into the file, so the file alone is the database
        connection.execute("PRAGMA journal_mode=DELETE")
    connection.close()
    return path


@pytest.fixture(scope="session")
def migrated_postgresql(postgres):
    """A PostgreSQL database at the migrations' head, made once: each test's database is created
    from it as a template (a copy on the server: some 50 ms, against some 500 ms of migrations)."""
    url = create_database(postgres, "gateway_template")
    dispose(create_app(app_config(url)))          # a template must have no connections when copied
    return "gateway_template"


@pytest.fixture
def make_app(request, tmp_path):
    """Build an app on a fresh test database from a gateway config mapping (TOML-shaped).

    A temp SQLite file or, with GATEWAY_TEST_DATABASE=postgresql, a database of the test's own on
    the session's server, dropped at teardown. Every app of a test shares its database, unless the
    test passes its own SQLALCHEMY_DATABASE_URI.
    """
    sqlite_file = tmp_path / "gateway.sqlite"
    server = request.getfixturevalue("postgres") if ON_POSTGRESQL else None
    template = request.getfixturevalue("migrated_postgresql" if ON_POSTGRESQL else "migrated_sqlite")
    postgresql = []                 # the test's PostgreSQL database, made on the first build
    opened = []                     # every PostgreSQL connection of the test, an app's that failed to start included

    def remember(dbapi_connection, _record):
        if isinstance(dbapi_connection, psycopg.Connection):
            opened.append(dbapi_connection)

    def database_url():
        if server is None:
            if not sqlite_file.exists():
                shutil.copyfile(template, sqlite_file)
            return f"sqlite:///{sqlite_file}"
        if not postgresql:
            postgresql.append(create_database(server, f"t_{next(DATABASE_NUMBERS)}", template=template))
        return postgresql[0]

    def build(gateway=None, **overrides):
        settings = gateway_config.parse(gateway or {}, {})
        return create_app(app_config(overrides.pop("SQLALCHEMY_DATABASE_URI", None) or database_url(),
                                     settings, **overrides))

    if server is None:
        yield build
        return
    import psycopg

    sa.event.listen(sa.pool.Pool, "connect", remember)
    try:
        yield build
    finally:                        # the server allows 200 connections: close the test's, drop its database
        sa.event.remove(sa.pool.Pool, "connect", remember)
        for connection in opened:
            connection.close()
        if postgresql:
            drop_database(server, postgresql[0].rsplit("/", 1)[1])


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


def served_gateway(tmp_path, toml, database=None):
    """A gateway for tests that start gunicorn: its configuration file (`toml`), an app on the same
    database to make users, keys and credit with (dispose its engine before the server starts using
    the database), and the environment for `servers.gunicorn_server`."""
    config = tmp_path / "gateway.toml"
    config.write_text(toml)
    database = database or f"sqlite:///{tmp_path / 'gateway.sqlite'}"
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "SQLALCHEMY_DATABASE_URI": database,
                      "GATEWAY_CONFIG": str(config), "GATEWAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY})
    env = {"DATABASE_URL": database, "GATEWAY_CONFIG": str(config), "SECRET_KEY": "test",
           "GATEWAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY, "GATEWAY_INSTANCE_PATH": str(tmp_path / "instance")}
    return app, env


@pytest.fixture
def redis_proc():
    """A throwaway redis-server for one test (skipped only where it is not installed); yields a
    servers.RedisProcess, whose `.process` a test may kill to lose Redis."""
    from servers import redis_server

    if shutil.which("redis-server") is None:
        if os.environ.get("GATEWAY_REQUIRE_REDIS") == "1":
            pytest.fail("Redis is required here (apt-get install redis-server)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with redis_server() as server:
        yield server


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
