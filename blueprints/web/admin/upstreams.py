"""/admin/upstreams: each provider with its operator keys and circuits, as this worker sees them.

Key health and circuit breakers live in each worker's memory, so the page says which worker
answered; keys are shown by their label (`openai#1`), never by their text.
"""
import os
from dataclasses import dataclass

from flask import current_app, render_template

from blueprints.web.admin import bp


@dataclass(frozen=True)
class KeyRow:
    label: str
    out_reason: str | None          # why the key is out of rotation, None while usable
    out_for_s: float | None         # seconds until it returns; None = until fixed (or restart)
    circuit: str


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
    return render_template("admin/upstreams.html", providers=rows, worker=os.getpid())


def _provider_row(provider, breakers, out):
    keys = tuple(KeyRow(key.id, out.get(key.id, {}).get("reason"), out.get(key.id, {}).get("until"),
                        breakers.get(f"key:{key.id}", {}).get("state", "closed")) for key in provider.keys)
    prefix = f"{provider.name}/"
    circuits = tuple((name[len(prefix):], entry["state"], entry["failure_count"], entry["last_failure_time"])
                     for name, entry in sorted(breakers.items()) if name.startswith(prefix))
    return ProviderRow(provider.name, provider.type, provider.base_url or "", keys, circuits)
