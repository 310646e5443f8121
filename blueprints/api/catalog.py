"""GET /api/models/catalog: seed 002's model metadata (SPEC 2.5), its uptime and times measured
from the request log of the last 24 hours, its prices from the catalog."""
from datetime import timedelta

from flask import Blueprint, g, jsonify

from blueprints.api.detail import detail_api
from blueprints.api.records import current_gateway
from models.request_log import ModelStats, model_stats
from models.user import utcnow

bp = Blueprint("catalog_api", __name__, url_prefix="/api")
detail_api(bp)

WINDOW = timedelta(hours=24)
NO_TRAFFIC = ModelStats(0, 0, None, None, None)
KINDS = {"chat": ("Text Generation", "/v1/chat/completions"), "embedding": ("Embedding", "/v1/embeddings")}


@bp.get("/models/catalog")
def models_catalog():
    """The models this caller may use, each with the last 24 hours' `uptime` (the share of its
    requests that did not fail with a 5xx; 1 without traffic) and `avg_time_low`/`normal`/`high`
    (the fastest, mean and slowest served request, in seconds; null without traffic)."""
    gateway = current_gateway()
    ratio = gateway.settings.price_groups.get(g.caller.price_group, 1.0)
    stats = model_stats(utcnow() - WINDOW)
    return jsonify({"success": True, "message": "", "data": [
        _model_json(m, stats.get(m.id, NO_TRAFFIC), ratio) for m in gateway.catalog.visible(g.caller.model_limits)]})


def _model_json(model, stats, ratio):
    category, endpoint = KINDS.get(model.kind, (model.kind, ""))
    per_token = bool(model.input_per_mtok or model.output_per_mtok)
    return {"model_name": model.id, "provider_name": model.owned_by or model.provider, "category": category,
            "endpoint": endpoint, "group_name": model.group, "group_ratio": ratio,
            "billing_type": "pay-per-token" if per_token else "pay-per-request" if model.per_request else "free",
            "input_price": model.input_per_mtok, "output_price": model.output_per_mtok,    # USD per million tokens
            "price_per_request": model.per_request,                                         # USD
            "uptime": round(1 - stats.failed / stats.requests, 4) if stats.requests else 1,
            "is_deprecation": 0,             # every configured model is active: the catalog has no retirements
            "avg_time_low": _seconds(stats.fastest_ms), "avg_time_normal": _seconds(stats.mean_ms),
            "avg_time_high": _seconds(stats.slowest_ms), "requests_24h": stats.requests,
            "max_input": None, "max_output": None}      # the catalog does not know context sizes


def _seconds(ms):
    return None if ms is None else round(ms / 1000, 3)
