"""Application factory: configuration → extensions → gateway → blueprints → CLI."""
import hashlib
import os
import threading
import time

import sqlalchemy as sa
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

import commands
import dbmigrate
from blueprints import cors, register_blueprints
from blueprints.json_answers import JSONAnswers
from config import Config, ensure_instance_secrets
from extensions import BUSY_HANDLER_OFF, SQLITE_BUSY_TIMEOUT_MS, db, htmx, login_manager
from gateway import Gateway, fastjson
from gateway import config as gateway_config
from gateway.ratelimits import RateLimits
from gateway.vault import Vault
from models.group_commit import GroupCommit

# A database server that is gone fails requests fast (503, blueprints/outages.py), well inside the
# request deadline: a stale pooled connection is pinged and replaced, a connection attempt gives up
# after 2 s (psycopg and the MySQL drivers take `connect_timeout`), a free pooled one is waited for 10 s.
SERVER_DATABASE_OPTIONS = {"pool_pre_ping": True, "pool_timeout": 10, "connect_args": {"connect_timeout": 2}}
RETENTION_EVERY_S = 3600       # how often each worker deletes log rows past their retention


def create_app(test_config=None):
    """Build an app; `test_config` overrides everything (tests pass a temp database)."""
    app = Flask(__name__, instance_path=os.environ.get("GATEWAY_INSTANCE_PATH") or None,
                instance_relative_config=True)
    app.config.from_object(Config)
    app.json = JSONAnswers(app)
    app.json.sort_keys = False
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(app.instance_path, "gateway.sqlite")
    if test_config is None:
        ensure_instance_secrets(app.instance_path)
        app.config.from_pyfile("config.py", silent=True)
        _from_environment(app)
    else:
        app.config.from_mapping(test_config)
    _trust_proxies(app)
    os.makedirs(app.instance_path, exist_ok=True)
    server_options = {} if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite") else SERVER_DATABASE_OPTIONS
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"json_serializer": fastjson.text, **server_options,
                                              **app.config["SQLALCHEMY_ENGINE_OPTIONS"]}

    settings = app.config["GATEWAY_SETTINGS"] or gateway_config.load(
        app.config["GATEWAY_CONFIG"] or os.path.join(app.instance_path, "gateway.toml"))
    state_file = _state_file(app)
    app.extensions["gateway"] = Gateway(settings, redis_url=app.config["REDIS_URL"], state_file=state_file)
    app.extensions["rate_limits"] = RateLimits(settings.limits, app.config["REDIS_URL"], _limits_file(state_file))
    app.extensions["vault"] = Vault(app.config["GATEWAY_ENCRYPTION_KEYS"])

    db.init_app(app)
    app.extensions["group_commit"] = GroupCommit(lambda: _committer_engine(app))
    login_manager.init_app(app)
    htmx.init_app(app)
    register_blueprints(app)
    cors.init_app(app)
    commands.init_app(app)
    with app.app_context():
        _prepare_database()
    return app


def start_sweeper(app):
    """Now and then, release credit held by requests whose worker died before settling them, and
    once an hour delete log rows past their retention.

    Every worker runs one (a greenlet under gevent); both jobs are idempotent, so they may overlap.
    """
    from models import credit, retention

    older_than = app.config["RESERVATION_SWEEP_S"]
    retention_settings = app.extensions["gateway"].settings.retention
    pruned_at = 0.0

    def sweep_forever():
        nonlocal pruned_at
        while True:
            time.sleep(max(5, older_than // 5))
            with app.app_context():
                try:
                    credit.sweep(older_than)
                    if time.monotonic() - pruned_at >= RETENTION_EVERY_S:
                        pruned_at = time.monotonic()
                        retention.prune(retention_settings)
                except sa.exc.SQLAlchemyError:
                    db.session.rollback()
                    app.logger.exception("reservation sweep or log pruning failed; will retry")

    threading.Thread(target=sweep_forever, name="reservation-sweeper", daemon=True).start()


def _from_environment(app):
    """The documented environment names (SPEC section 9), read once at start."""
    env = os.environ
    for name in ("SECRET_KEY", "GATEWAY_ENCRYPTION_KEYS", "JWT_SECRET", "REDIS_URL", "GATEWAY_CONFIG", "METRICS_TOKEN"):
        if env.get(name):
            app.config[name] = env[name]
    if env.get("DATABASE_URL"):
        app.config["SQLALCHEMY_DATABASE_URI"] = env["DATABASE_URL"]
    if env.get("SESSION_COOKIE_SECURE"):
        app.config["SESSION_COOKIE_SECURE"] = env["SESSION_COOKIE_SECURE"].lower() in ("1", "true", "yes", "on")
    if env.get("TRUSTED_PROXIES"):
        app.config["TRUSTED_PROXIES"] = int(env["TRUSTED_PROXIES"])


def _state_file(app):
    """Where this instance's workers share breakers and key health without Redis: beside a SQLite
    database, else in instance/ under the database's digest (two gateways on a machine never mix)."""
    if app.config["HEALTH_STATE_FILE"] is not None:
        return app.config["HEALTH_STATE_FILE"] or None          # "" keeps health per worker
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    database = dbmigrate.sqlite_file(uri)
    digest = hashlib.sha256(uri.encode()).hexdigest()[:12]
    path = database + ".health" if database else os.path.join(app.instance_path, f"health-{digest}.sqlite")
    dbmigrate.create_private_sqlite_file(path)
    return path


def _limits_file(state_file):
    """Rate-limit counts sit beside the health state file (their own file: they change on every
    request, the health state rarely); no state file keeps them per worker, in memory."""
    if not state_file:
        return None
    path = state_file + ".limits"
    dbmigrate.create_private_sqlite_file(path)
    return path


def _prepare_database():
    """Migrate to head on start (under a lock, so workers may start together); SQLite gets WAL and mode 0600."""
    engine = db.engine
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        engine.dispose()
        path = dbmigrate.sqlite_file(engine.url)
        if path is not None:
            dbmigrate.create_private_sqlite_file(path)
    import models  # noqa: F401  (registers the tables: autogenerate compares migrations to them)
    dbmigrate.upgrade_on_start(engine)
    _check_vault_reads_stored_keys()


def _committer_engine(app):
    """The group commit's own engine (models.group_commit): the app's database, one connection,
    closed whenever the app's pool is disposed."""
    with app.app_context():
        pooled = db.engine
    url = pooled.url                   # as Flask-SQLAlchemy resolved it (a relative SQLite path, for one)
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return pooled                  # a database that lives in its one connection
    engine = sa.create_engine(url, **{**app.config["SQLALCHEMY_ENGINE_OPTIONS"], "pool_size": 1, "max_overflow": 0})
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "connect", _busy_handler_off)
    sa.event.listen(pooled, "engine_disposed", lambda _: engine.dispose())
    return engine


def _check_vault_reads_stored_keys():
    """A wrong or missing encryption key is a start-up error, not a surprise on the first request."""
    from flask import current_app

    from models import UserProviderKey

    sample = db.session.scalar(db.select(UserProviderKey.ciphertext).limit(1))
    db.session.rollback()
    if sample is not None:
        current_app.extensions["vault"].decrypt(sample)


def _sqlite_pragmas(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _busy_handler_off(dbapi_connection, record):
    """The group commit's connection writes only in begin_write's transactions, which wait for the lock
    themselves (and a transaction that holds it waits for nothing): its busy handler is turned off once,
    not around every BEGIN."""
    dbapi_connection.execute("PRAGMA busy_timeout=0")
    record.info[BUSY_HANDLER_OFF] = True


def _trust_proxies(app):
    """Believe X-Forwarded-* from TRUSTED_PROXIES hops only: without one they are ignored, so a
    client cannot choose the address that login and sign-up throttling count."""
    hops = int(app.config["TRUSTED_PROXIES"])
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
