"""/models: the catalog with prices, group, fallback order and circuit status, filtered live by htmx."""
from dataclasses import dataclass

from flask import Blueprint, current_app, render_template, request
from flask_login import login_required

from blueprints.web.security import protect
from gateway import pricing
from gateway.errors import GatewayError

bp = protect(Blueprint("catalog", __name__))


@dataclass(frozen=True)
class ModelRow:
    """What one table row shows; computed here so the template stays plain."""
    id: str
    kind: str
    provider: str
    group: str
    fallbacks: tuple
    input_per_mtok: str          # prices in credits, exact (a price rounded to the cent would misquote 0.075)
    output_per_mtok: str
    per_request: str
    status: str


@bp.get("/models")
@login_required
def index():
    query = request.args.get("q", "").strip()
    rows = [r for r in catalog_rows() if _matches(r, query)]
    template = "models/_rows.html" if request.htmx and request.htmx.target == "model-rows" else "models/index.html"
    return render_template(template, rows=rows, query=query)


def catalog_rows():
    gateway = current_app.extensions["gateway"]
    breakers = gateway.router.breakers.snapshot()
    return [ModelRow(m.id, m.kind, m.provider, m.group or "—", _fallbacks(gateway.catalog, m),
                     _price(m.input_per_mtok), _price(m.output_per_mtok), _price(m.per_request), _status(breakers, m))
            for m in gateway.catalog.visible()]


def _price(usd):
    return pricing.format_credits(pricing.from_credits(usd), exact=True)


def _fallbacks(catalog, model):
    """The models tried after this one when it fails (its group first, then the other groups)."""
    try:
        return tuple(m.id for m in catalog.candidates(model.id, model.kind)[1:])
    except GatewayError:
        return ()


def _status(breakers, model):
    """The router's breaker state for this model's circuit (closed = healthy)."""
    state = breakers.get(f"{model.provider}/{model.id}", {}).get("state", "closed")
    return {"closed": "available", "open": "circuit open", "half_open": "probing"}.get(state, state)


def _matches(row, query):
    if not query:
        return True
    query = query.lower()
    return any(query in (value or "").lower() for value in (row.id, row.provider, row.group, row.kind))
