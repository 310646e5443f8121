"""The detailed health family (SPEC 2.6) for operators: /health/detailed, /health/circuit-breakers,
/health/monitoring, /health/system and /health/history, each for an admin's key (or JWT) or the
METRICS_TOKEN, errors in the `{"detail"}` shape.

They name providers, models and key labels (`openai#1`), never a key's text, and like the public
probes they never call an upstream. blueprints/health.py keeps the cheap unauthenticated ones.
"""
import os
import resource
import shutil
import time
from datetime import timedelta

from flask import Blueprint, current_app, jsonify

from blueprints.api.auth import require_operator
from blueprints.api.detail import detail_api
from blueprints.health import database_answers
from extensions import db
from gateway import metrics
from models.request_log import hourly_stats
from models.user import utcnow

bp = Blueprint("health_detail", __name__, url_prefix="/health")
detail_api(bp, public=("detailed", "circuit_breakers", "monitoring", "system", "history"))   # require_operator
STARTED = time.monotonic()
HISTORY = timedelta(hours=24)


@bp.before_request
def operators_only():
    require_operator()


@bp.get("/detailed")
def detailed():
    """Each component's status, message, details and how long its check took; the overall status
    as /health reports it (only a lost database is "unhealthy", 503)."""
    components = {name: _timed(check) for name, check in (("database", _database), ("redis", _redis),
                                                             ("rate_limits", _rate_limits),
                                                             ("llm_services", _llm_services))}
    states = {c["status"] for c in components.values()}
    status = "unhealthy" if components["database"]["status"] == "down" else "degraded" if "degraded" in states else "healthy"
    return jsonify({"status": status, "components": components}), 503 if status == "unhealthy" else 200


@bp.get("/circuit-breakers")
def circuit_breakers():
    """Every circuit the router remembers (shared by the workers, or by every instance through
    Redis): per provider and model, or per provider key's endpoint; plus the retry and breaker settings."""
    gateway = current_app.extensions["gateway"]
    retry, breaker = gateway.settings.retry, gateway.settings.breaker
    return jsonify({"circuit_breakers": [_circuit(name, entry) for name, entry in
                                         sorted(gateway.router.breakers.snapshot().items())],
                    "keys_out_of_rotation": gateway.router.key_health.snapshot(),
                    "retry_config": {"max_attempts": retry.max_attempts, "base_delay": retry.base_delay,
                                     "max_delay": retry.max_delay, "exponential_base": retry.exponential_base,
                                     "jitter": retry.jitter, "key_cooldown_s": retry.key_cooldown_s},
                    "circuit_breaker_config": {"failure_threshold": breaker.failure_threshold,
                                               "recovery_timeout": breaker.recovery_timeout,
                                               "distinct_callers": breaker.distinct_callers}})


@bp.get("/monitoring")
def monitoring():
    """Which integrations this gateway has: Prometheus is built in; Sentry and Langfuse are not."""
    return jsonify({"prometheus": {"enabled": True, "endpoint": "/metrics", "multiprocess": metrics.MULTIPROCESS,
                                   "token_configured": bool(current_app.config["METRICS_TOKEN"])},
                    "sentry": {"enabled": False, "reason": "not built in"},
                    "langfuse": {"enabled": False, "reason": "not built in"},
                    "request_log": {"enabled": True, "endpoint": "/api/logs"}})


@bp.get("/system")
def system():
    """The machine's cpu, memory and disk use (as /api/v1/health), and this worker's own."""
    return jsonify({**system_stats(), "load_average": os.getloadavg(), "cpu_count": os.cpu_count(),
                    "worker": {"pid": os.getpid(), "uptime_s": int(time.monotonic() - STARTED),
                               "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}})


@bp.get("/history")
def history():
    """The last 24 hours hour by hour, from the request log (so every worker and instance agrees):
    requests, client errors (4xx), failures (5xx) and the mean time of the served ones."""
    hours = hourly_stats(utcnow() - HISTORY)
    return jsonify({"source": "request_log", "window_hours": 24, "hours": [
        {"hour": hour + "Z", "requests": requests, "client_errors": client_errors, "failed": failed,
         "mean_latency_ms": None if mean is None else round(float(mean), 1)}
        for hour, requests, client_errors, failed, mean in hours]})


def system_stats():
    """cpu (load over cores), memory and disk (of instance/) use in percent: no extra dependency."""
    load = os.getloadavg()[0] / (os.cpu_count() or 1) * 100
    with open("/proc/meminfo") as fh:
        info = {line.split(":")[0]: int(line.split()[1]) for line in fh if line.split()}
    memory = 100 * (1 - info.get("MemAvailable", 0) / info["MemTotal"]) if info.get("MemTotal") else None
    disk = shutil.disk_usage(current_app.instance_path)
    return {"cpu_percent": round(min(load, 100.0), 1), "memory_percent": round(memory, 1) if memory is not None else None,
            "disk_usage": round(100 * disk.used / disk.total, 1)}


def _timed(check):
    started = time.perf_counter()
    status, message, details = check()
    return {"status": status, "message": message, "details": details,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2)}


def _database():
    dialect = db.engine.dialect.name
    if database_answers():
        return "ok", "SELECT 1 answered", {"dialect": dialect}
    return "down", "the database does not answer", {"dialect": dialect}


def _redis():
    gateway = current_app.extensions["gateway"]
    if not current_app.config["REDIS_URL"]:
        return "not configured", "breakers and key health are shared through the instance's state file", {}
    gateway.router.breakers.snapshot()           # asks Redis, so `degraded` is current
    if gateway.shared_state.degraded:
        return "degraded", "Redis is unreachable: health state is kept per worker until it returns", {
            "outages": gateway.shared_state.outages}
    return "ok", "health state is shared with every worker and instance", {"outages": gateway.shared_state.outages}


def _rate_limits():
    limits = current_app.extensions["rate_limits"]
    if limits.degraded:
        return "degraded", "Redis is unreachable: rate limits are counted per instance", {"storage": limits.storage_name}
    return "ok", f"counted in {limits.storage_name}", {"storage": limits.storage_name}


def _llm_services():
    """Per enabled provider: usable unless every known circuit of its models is open."""
    gateway = current_app.extensions["gateway"]
    providers = {name: "ok" if gateway.router.breakers.provider_usable(name) else "circuits open"
                 for name, provider in gateway.settings.providers.items() if provider.enabled}
    down = sum(1 for state in providers.values() if state != "ok")
    return ("degraded" if down else "ok"), f"{len(providers) - down} of {len(providers)} providers usable", providers


def _circuit(name, entry):
    """One circuit: `provider/model`, or `key:<scope>` for a provider key's endpoint (its label, never its text)."""
    if name.startswith("key:"):
        where = {"kind": "key", "key": name[4:]}
    else:
        provider, _, model = name.partition("/")
        where = {"kind": "model", "provider": provider, "model": model}
    return {**where, **entry}
