"""Schema migrations: Alembic through Flask-Migrate, applied on start under a lock.

Any number of workers and instances may start together on one database. Each compares the
database's revision to the head of `migrations/` (one cheap query); only when they differ does it
take the lock (a PostgreSQL advisory lock, or a file lock beside a SQLite database), look again,
and upgrade. The second look is what makes it race-free: whoever waited finds the work done.

A database made by a release before migrations existed (tables by `db.create_all()`, no
`alembic_version`) is stamped at the baseline revision first, then upgraded like any other.

Alembic and Flask-Migrate (11 MiB in every process that imports them) are loaded only to migrate and
for the `flask db` commands: a worker starting on a database already at `HEAD_REVISION` reads its
revision with two plain queries (is there a version table; what it holds) and never loads them.
"""
import fcntl
import functools
import logging
import os
from contextlib import contextmanager

import sqlalchemy as sa
from flask import current_app

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
BASELINE_REVISION = "5d1f0c2a9b7e"     # the schema `db.create_all()` made up to the 2026-11-30 release
HEAD_REVISION = "3e9a6c1d8b54"         # the newest file in migrations/versions (a test keeps the two in step)
ADVISORY_LOCK_KEY = 7_318_065_512_030_761_297   # fixed, arbitrary: the same in every worker and instance
PRIVATE_FILE_MODE = 0o600

log = logging.getLogger(__name__)


def init_app(app, db):
    """Register Flask-Migrate on `app`: the `flask db` commands, and the upgrade (migrations/env.py) need it."""
    from flask_migrate import Migrate

    # render_as_batch: SQLite alters a table by copying it, which autogenerate must write as batch ops.
    Migrate(directory=MIGRATIONS_DIR, render_as_batch=True).init_app(app, db)


def upgrade_on_start(engine):
    """Bring the database to head; a no-op costing two small queries (and no Alembic) when it is there already."""
    current = _current_revision(engine)
    if current == HEAD_REVISION:
        return
    script = _script(MIGRATIONS_DIR)
    if current is not None and not _known(script, current):
        # A newer release migrated this database (a rolling deploy): its revisions are additive,
        # so run on rather than refuse to start; `flask db upgrade` from that release is the fix.
        log.warning("database is at revision %s, unknown to this release; not migrating", current)
        return
    with _migration_lock(engine):
        with engine.connect() as connection:
            _upgrade(connection)


def sqlite_file(url):
    """The database file of a SQLite URL, or None (a server database, or SQLite in memory)."""
    url = sa.engine.make_url(url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.query.get("mode") == "memory":
        return None
    return url.database


def create_private_sqlite_file(path):
    """Create the SQLite file 0600 before SQLite does (it would use 0644), and tighten an old one.

    SQLite gives its -wal and -shm files the mode of the database file, so those follow.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))
    for name in (path, path + "-wal", path + "-shm"):
        try:
            mode = os.stat(name).st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            try:
                os.chmod(name, mode & 0o700)
            except PermissionError:      # not ours to change: say so rather than fail the start
                log.warning("%s is open to others (mode %o) and not ours to chmod", name, mode)


def alembic_config():
    """Flask-Migrate's Alembic config, for use inside an app context; env.py leaves logging alone."""
    if "migrate" not in current_app.extensions:
        init_app(current_app, current_app.extensions["sqlalchemy"])
    config = current_app.extensions["migrate"].migrate.get_config()
    config.attributes["configure_logger"] = False
    return config


def _upgrade(connection):
    """Under the lock: look again, stamp a pre-migrations database, upgrade to head, in one transaction.

    SQLite's DDL is transactional too, but Python's sqlite3 opens transactions only before
    writes of rows; an explicit BEGIN keeps a crash from leaving half a schema behind. Foreign
    keys are off meanwhile (they cannot change inside a transaction): batch operations copy and
    drop tables, which would otherwise cascade or fail.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        with connection.begin():          # alembic sees a transaction of ours and commits nothing itself
            if sqlite:
                connection.connection.driver_connection.execute("BEGIN IMMEDIATE")
            config = alembic_config()
            config.attributes["connection"] = connection
            before = MigrationContext.configure(connection).get_current_revision()
            if before is None and sa.inspect(connection).has_table("users"):
                log.warning("database made before migrations: stamping it at %s", BASELINE_REVISION)
                command.stamp(config, BASELINE_REVISION)
            command.upgrade(config, "head")
            after = MigrationContext.configure(connection).get_current_revision()
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
    if after != before:
        log.info("database upgraded from %s to %s", before, after)


@contextmanager
def _migration_lock(engine):
    """One migrator at a time across processes and hosts sharing the database."""
    path = sqlite_file(engine.url)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
    elif path is not None:
        fd = os.open(path + ".migrate.lock", os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)        # released by close, even if the process dies
            yield
        finally:
            os.close(fd)
    else:                                         # SQLite in memory lives in one process: nothing to race
        yield


def _current_revision(engine):
    """The database's revision (None before the first migration), read as Alembic keeps it: one row, one column."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        revisions = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    return revisions[0] if len(revisions) == 1 else tuple(revisions)    # several heads: never HEAD_REVISION


def _known(script, revision):
    from alembic.util import CommandError

    try:
        return script.get_revision(revision) is not None
    except CommandError:        # "No such revision or branch"
        return False


@functools.lru_cache(maxsize=None)
def _script(directory):
    """The revisions on disk, read once per process (they do not change under a running app)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(directory)
