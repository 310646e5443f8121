"""Migrations: the upgrade on start, a database from the release before migrations, the lock, file modes."""
import logging
import os
import shutil
import subprocess
import sys
import threading

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import dbmigrate
from app import create_app
from conftest import TEST_ENCRYPTION_KEY
from extensions import db
from gateway import config as gateway_config
from models import ApiKey, CreditTransaction, RequestLog, User, UserProviderKey
from servers import ROOT, create_database

HEAD = dbmigrate._script(dbmigrate.MIGRATIONS_DIR).get_current_head()
# Made by the release of 2026-11-30 (db.create_all, no alembic_version): a user, a key, a grant,
# a provider key and a request log row. The key in it is TEST_ENCRYPTION_KEY.
MAIN_2026_11_30 = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "db-main-2026-11-30.sqlite")


def build(url):
    return create_app({"TESTING": True, "SECRET_KEY": "test-secret", "SQLALCHEMY_DATABASE_URI": url,
                       "GATEWAY_SETTINGS": gateway_config.parse({}, {}),
                       "GATEWAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY})


def dispose(*apps):
    """Close the apps' pooled connections (PostgreSQL warns about any left open)."""
    for app in apps:
        with app.app_context():
            db.engine.dispose()


def revision(app):
    with app.app_context(), db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_drift(app):
    """What autogenerate would still write: empty when the migrations create exactly the models' schema."""
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def test_a_database_from_the_release_before_migrations_upgrades_in_place(tmp_path):
    path = tmp_path / "gateway.sqlite"
    shutil.copy(MAIN_2026_11_30, path)
    app = build(f"sqlite:///{path}")             # also decrypts the stored provider key: the vault check on start
    assert revision(app) == HEAD
    assert schema_drift(app) == []
    with app.app_context():
        alice = db.session.scalar(sa.select(User).filter_by(username="alice"))
        assert alice.check_password("correct-horse")
        assert [key.name for key in db.session.scalars(sa.select(ApiKey))] == ["fixture-key"]
        assert [(row.kind, row.amount) for row in db.session.scalars(sa.select(CreditTransaction))] == [
            ("grant", 5_000_000)]
        assert alice.balance == 5_000_000
        provider_key = db.session.scalar(sa.select(UserProviderKey))
        assert app.extensions["vault"].decrypt(provider_key.ciphertext) == "sk-fixture-provider-key-1234"
        log = db.session.scalar(sa.select(RequestLog))
        assert (log.request_id, log.status, log.completion_tokens) == ("req-fixture-1", 200, 5)
        db.engine.dispose()

    for _ in range(2):                            # a second start, then the CLI twice: nothing more to do
        again = build(f"sqlite:///{path}")
        assert revision(again) == HEAD
        dispose(again)
    for _ in range(2):
        flask_db_upgrade(f"sqlite:///{path}", tmp_path)
    assert revision(app) == HEAD
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1
        assert db.session.scalar(sa.select(sa.func.count()).select_from(RequestLog)) == 1
        db.engine.dispose()


def flask_db_upgrade(url, tmp_path):
    """`flask --app app db upgrade` from the repository root, as the README says (its own process:
    alembic.ini's logging setup would replace pytest's handlers in this one)."""
    env = {**os.environ, "DATABASE_URL": url, "GATEWAY_INSTANCE_PATH": str(tmp_path / "instance"),
           "GATEWAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY, "SECRET_KEY": "test-secret"}
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_head_revision_constant_names_the_newest_migration():
    assert dbmigrate.HEAD_REVISION == HEAD      # a new migration must move it too


# An app made in its own process, printing which of the libraries a worker loads only on use it has loaded.
LOADED = """
import sys
from app import create_app
create_app()
print(sorted(name for name in ("alembic", "flask_migrate", "redis", "jwt") if name in sys.modules))
"""


def test_a_worker_on_a_migrated_database_never_loads_alembic(tmp_path):
    """Memory: the migration tool, redis and PyJWT load only when used (11, 6 and 2 MiB a worker)."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.sqlite'}", "GATEWAY_ENCRYPTION_KEYS":
           TEST_ENCRYPTION_KEY, "SECRET_KEY": "test-secret", "GATEWAY_INSTANCE_PATH": str(tmp_path / "instance")}

    def loaded():
        done = subprocess.run([sys.executable, "-c", LOADED], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    assert loaded() == "['alembic', 'flask_migrate']"       # the first start migrates the new database
    assert loaded() == "[]"                                 # later ones find it at head


def test_a_fresh_sqlite_database_gets_exactly_the_models_schema(tmp_path):
    app = build(f"sqlite:///{tmp_path / 'gateway.sqlite'}")      # from empty, not conftest's migrated copy
    assert revision(app) == HEAD
    assert schema_drift(app) == []     # a model changed without a new revision fails here
    dispose(app)


def test_a_fresh_postgresql_database_gets_exactly_the_models_schema(postgres, tmp_path):
    url = create_database(postgres, "migrations_fresh")
    app = build(url)
    assert revision(app) == HEAD
    assert schema_drift(app) == []
    flask_db_upgrade(url, tmp_path)
    again = build(url)
    assert revision(again) == HEAD
    dispose(app, again)


def test_the_sqlite_files_are_private(tmp_path):
    """0600 for the database and its -wal and -shm, whatever the umask; an old 0644 file is tightened."""
    old_umask = os.umask(0o022)
    try:
        path = tmp_path / "gateway.sqlite"
        app = build(f"sqlite:///{path}")
        with app.app_context():
            db.session.add(User(username="bob", password_hash="x"))
            db.session.commit()                    # WAL mode: -wal and -shm exist while connections are open
            names = [name for name in os.listdir(tmp_path) if name.startswith("gateway.sqlite")]
            assert {"gateway.sqlite", "gateway.sqlite-wal", "gateway.sqlite-shm"} <= set(names)
            assert {name: mode(tmp_path / name) for name in names} == {name: 0o600 for name in names}
            db.engine.dispose()

        legacy = tmp_path / "legacy.sqlite"
        shutil.copy(MAIN_2026_11_30, legacy)
        os.chmod(legacy, 0o644)
        app = build(f"sqlite:///{legacy}")
        assert mode(legacy) == 0o600
        dispose(app)
    finally:
        os.umask(old_umask)


def mode(path):
    return os.stat(path).st_mode & 0o777


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_start_waits_for_the_migration_lock(request, kind, tmp_path):
    """Whoever holds the lock migrates; a start that finds it taken waits, then finds the work done."""
    if kind == "postgresql":
        postgres = request.getfixturevalue("postgres")
        url = create_database(postgres, "migrations_lock")
    else:
        url = f"sqlite:///{tmp_path / 'gateway.sqlite'}"
    holder, built = sa.create_engine(url, poolclass=sa.pool.NullPool), []
    with dbmigrate._migration_lock(holder):
        started = threading.Thread(target=lambda: built.append(build(url)), daemon=True)
        started.start()
        started.join(1.0)
        assert started.is_alive(), "the start did not wait for the lock"
        with holder.connect() as connection:
            assert not sa.inspect(connection).has_table("alembic_version")
    started.join(30)
    assert not started.is_alive()
    with holder.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == HEAD
    holder.dispose()
    dispose(*built)


def test_a_database_migrated_by_a_newer_release_still_starts(tmp_path, caplog):
    """A rolling deploy: an older instance restarting after a newer one migrated runs on and says so."""
    path = tmp_path / "gateway.sqlite"
    app = build(f"sqlite:///{path}")
    with app.app_context():
        db.session.execute(sa.text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
        db.session.commit()
        db.engine.dispose()
    with caplog.at_level(logging.WARNING, logger="dbmigrate"):
        app = build(f"sqlite:///{path}")
    assert "unknown to this release" in caplog.text
    assert revision(app) == "ffffffffffff"
    dispose(app)
