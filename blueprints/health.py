"""Probes for load balancers and orchestrators: /health/live, /ready and /health (SPEC 2.6).

They need no credentials and name no provider, model or key, and they stay cheap: one `SELECT 1`
and the circuit breakers' state, never an upstream call. CSRF and the login only guard the web
blueprints, so nothing here is touched by them.
"""
from importlib.metadata import PackageNotFoundError, version

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify

from extensions import db

bp = Blueprint("health", __name__)

STATEMENT_TIMEOUT_MS = 2000      # a PostgreSQL that accepts the connection but stalls fails the probe in 2 s

try:
    VERSION = version("llm-gateway")
except PackageNotFoundError:     # run from a checkout that was never `pip install`ed
    VERSION = "unknown"


def start_draining(app):
    """From now on /ready answers 503 while in-flight requests finish (gunicorn.conf.py calls it on SIGTERM)."""
    app.extensions["draining"] = True


@bp.get("/health/live")
def live():
    """The process serves requests; nothing else is checked, so a lost dependency never restarts it."""
    return jsonify({"status": "ok"})


@bp.get("/ready")
def ready():
    """Take traffic only while the database answers and the worker is not shutting down."""
    if current_app.extensions.get("draining"):
        return jsonify({"status": "unavailable", "reason": "draining"}), 503
    if not database_answers():
        return jsonify({"status": "unavailable", "reason": "database unavailable"}), 503
    return jsonify({"status": "ready"})


@bp.get("/health")
def health():
    """Each component's state: a lost database is "unhealthy" (503), lost Redis or providers "degraded" (200)."""
    gateway = current_app.extensions["gateway"]
    database = "ok" if database_answers() else "down"
    services = _llm_services(gateway)      # asks Redis first when configured, so `degraded` below is current
    redis = ("not configured" if not current_app.config["REDIS_URL"] else
             "degraded" if gateway.shared_state.degraded else "ok")
    status = ("unhealthy" if database == "down" else
              "degraded" if redis == "degraded" or services["all_circuits_open"] else "healthy")
    return jsonify({"status": status, "version": VERSION,
                    "components": {"database": database, "redis": redis, "llm_services": services},
                    "retry_enabled": gateway.settings.retry.max_attempts > 1,
                    "circuit_breaker_enabled": True,
                    "rate_limit_storage": current_app.extensions["rate_limits"].storage_name}), 503 if status == "unhealthy" else 200


def database_answers():
    """Whether a `SELECT 1` succeeds now; a dead server fails within the engine's connect timeout."""
    try:
        if db.engine.dialect.name == "postgresql":
            db.session.execute(sa.text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
        db.session.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        db.session.close()


def _llm_services(gateway):
    """How many providers are enabled, and how many of them have every model's circuit open: counts, no names."""
    enabled = [name for name, provider in gateway.settings.providers.items() if provider.enabled]
    return {"configured": len(enabled),
            "all_circuits_open": sum(1 for name in enabled if not gateway.router.breakers.provider_usable(name))}
