"""/admin/upstreams: each provider with its operator keys and circuits (shared by the workers, or by
every instance through Redis), each key's prompt-cache hit rate (what cache affinity keeps warm),
and the latest answers that cost more than their hold.

Keys are shown by their label (`openai#1`), never by their text.
"""
import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app, render_template

from blueprints.web.admin import bp
from extensions import db
from models import RequestLog
from models.user import utcnow

MAX_OVERRUNS = 20
CACHE_WINDOW = timedelta(hours=24)
CACHE_ROWS = 10_000      # the latest served requests read for the hit rates (a key's label is in JSON)


@dataclass(frozen=True)
class KeyRow:
    label: str
    out_reason: str | None          # why the key is out of rotation, None while usable
    out_for_s: float | None         # seconds until it returns; None = until fixed (or restart)
    circuit: str                    # of the key's endpoint (no connection, TLS)
    models_out: tuple               # (model id, reason, seconds left): models this key may not use (403)
    cache_hit: float | None         # share of prompt tokens read from the upstream's cache; None: no traffic


@dataclass(frozen=True)
class ProviderRow:
    name: str
    type: str
    base_url: str
    keys: tuple
    circuits: tuple                 # (model id, state, consecutive failures, last failure epoch)


@bp.get("/upstreams")
def upstreams():
    gateway = current_app.extensions["gateway"]
    breakers, out = gateway.router.breakers.snapshot(), gateway.router.key_health.snapshot()
    hits = _cache_hit_rates()
    rows = [_provider_row(provider, breakers, out, hits) for provider in gateway.settings.providers.values()]
    overruns = db.session.scalars(sa.select(RequestLog).where(RequestLog.overrun > 0)
                                  .order_by(RequestLog.id.desc()).limit(MAX_OVERRUNS)).all()
    return render_template("admin/upstreams.html", providers=rows, worker=os.getpid(), overruns=overruns,
                           shared=gateway.shared_state and gateway.shared_state.scope, cache_rows=CACHE_ROWS)


def _cache_hit_rates():
    """(provider, key label) -> cached share of its prompt tokens over the last 24 h, from the latest
    CACHE_ROWS served requests: each counts for the key of its last attempt, the one that answered."""
    rows = db.session.execute(sa.select(RequestLog.attempts, RequestLog.prompt_tokens, RequestLog.cache_read_tokens)
                              .where(RequestLog.created_at >= utcnow() - CACHE_WINDOW, RequestLog.status == 200,
                                     RequestLog.prompt_tokens > 0)
                              .order_by(RequestLog.id.desc()).limit(CACHE_ROWS))
    prompt, cached = defaultdict(int), defaultdict(int)
    for attempts, prompt_tokens, cache_read_tokens in rows:
        answered = attempts[-1] if attempts else {}
        key = (answered.get("provider"), answered.get("key_id"))
        prompt[key] += prompt_tokens
        cached[key] += cache_read_tokens
    return {key: cached[key] / tokens for key, tokens in prompt.items()}


def _provider_row(provider, breakers, out, hits):
    keys = tuple(_key_row(key, breakers, out, hits.get((provider.name, key.id))) for key in provider.keys)
    prefix = f"{provider.name}/"
    circuits = tuple((name[len(prefix):], entry["state"], entry["failure_count"], entry["last_failure_time"])
                     for name, entry in sorted(breakers.items()) if name.startswith(prefix))
    return ProviderRow(provider.name, provider.type, provider.base_url or "", keys, circuits)


def _key_row(key, breakers, out, cache_hit):
    whole = out.get(key.scope, {})
    prefix = f"{key.scope}|"
    models_out = tuple((name[len(prefix):], entry["reason"], entry["until"])
                       for name, entry in sorted(out.items()) if name.startswith(prefix))
    return KeyRow(key.id, whole.get("reason"), whole.get("until"),
                  breakers.get(f"key:{key.scope}", {}).get("state", "closed"), models_out, cache_hit)
