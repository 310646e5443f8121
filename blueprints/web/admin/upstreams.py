"""/admin/upstreams: each provider with its operator keys and circuits (shared by the workers, or by
every instance through Redis), and the latest answers that cost more than their hold.

Keys are shown by their label (`openai#1`), never by their text.
"""
import os
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app, render_template

from blueprints.web.admin import bp
from extensions import db
from models import RequestLog

MAX_OVERRUNS = 20


@dataclass(frozen=True)
class KeyRow:
    label: str
    out_reason: str | None          # why the key is out of rotation, None while usable
    out_for_s: float | None         # seconds until it returns; None = until fixed (or restart)
    circuit: str                    # of the key's endpoint (no connection, TLS)
    models_out: tuple               # (model id, reason, seconds left): models this key may not use (403)


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
    rows = [_provider_row(provider, breakers, out) for provider in gateway.settings.providers.values()]
    overruns = db.session.scalars(sa.select(RequestLog).where(RequestLog.overrun > 0)
                                  .order_by(RequestLog.id.desc()).limit(MAX_OVERRUNS)).all()
    return render_template("admin/upstreams.html", providers=rows, worker=os.getpid(), overruns=overruns,
                           shared=gateway.shared_state and gateway.shared_state.scope)


def _provider_row(provider, breakers, out):
    keys = tuple(_key_row(key, breakers, out) for key in provider.keys)
    prefix = f"{provider.name}/"
    circuits = tuple((name[len(prefix):], entry["state"], entry["failure_count"], entry["last_failure_time"])
                     for name, entry in sorted(breakers.items()) if name.startswith(prefix))
    return ProviderRow(provider.name, provider.type, provider.base_url or "", keys, circuits)


def _key_row(key, breakers, out):
    whole = out.get(key.scope, {})
    prefix = f"{key.scope}|"
    models_out = tuple((name[len(prefix):], entry["reason"], entry["until"])
                       for name, entry in sorted(out.items()) if name.startswith(prefix))
    return KeyRow(key.id, whole.get("reason"), whole.get("until"),
                  breakers.get(f"key:{key.scope}", {}).get("state", "closed"), models_out)
