"""GET /v1/models and /v1/models/{id}: only the models this key may use, in OpenAI's shape, or in
Anthropic's when the caller sends `anthropic-version` (as the Anthropic SDKs and Claude Code do)."""
from datetime import UTC, datetime

from flask import jsonify, request

from blueprints.api import bp
from blueprints.api.auth import authenticate
from blueprints.api.records import current_gateway
from gateway.errors import ModelNotFound

CREATED = 1_700_000_000     # the catalog has no creation dates; a fixed one keeps answers stable
CREATED_AT = datetime.fromtimestamp(CREATED, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def model_object(model):
    """OpenAI's Model plus seed 004's permission/root/parent."""
    return {"id": model.id, "object": "model", "created": CREATED, "owned_by": model.owned_by,
            "permission": [], "root": model.upstream_name, "parent": None}


def anthropic_model(model):
    """Anthropic's ModelInfo."""
    return {"type": "model", "id": model.id, "display_name": model.id, "created_at": CREATED_AT}


def _anthropic_caller():
    return "anthropic-version" in request.headers


@bp.get("/models")
def list_models():
    caller = authenticate()
    models = current_gateway().catalog.visible(caller.model_limits)
    if _anthropic_caller():
        data = [anthropic_model(m) for m in models]
        return jsonify({"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                        "last_id": data[-1]["id"] if data else None})
    return jsonify({"object": "list", "data": [model_object(m) for m in models]})


@bp.get("/models/<path:model_id>")
def get_model(model_id):
    caller = authenticate()
    model = next((m for m in current_gateway().catalog.visible(caller.model_limits) if m.id == model_id), None)
    if model is None:
        raise ModelNotFound(model_id)
    return jsonify(anthropic_model(model) if _anthropic_caller() else model_object(model))
