"""GET /v1/models and /v1/models/{id}: only the models this key may use."""
from flask import jsonify

from blueprints.api import bp
from blueprints.api.auth import authenticate
from blueprints.api.records import current_gateway
from gateway.errors import ModelNotFound

CREATED = 1_700_000_000     # the catalog has no creation dates; a fixed one keeps answers stable


def model_object(model):
    """OpenAI's Model plus seed 004's permission/root/parent."""
    return {"id": model.id, "object": "model", "created": CREATED, "owned_by": model.owned_by,
            "permission": [], "root": model.upstream_name, "parent": None}


@bp.get("/models")
def list_models():
    caller = authenticate()
    models = current_gateway().catalog.visible(caller.model_limits)
    return jsonify({"object": "list", "data": [model_object(m) for m in models]})


@bp.get("/models/<path:model_id>")
def get_model(model_id):
    caller = authenticate()
    model = next((m for m in current_gateway().catalog.visible(caller.model_limits) if m.id == model_id), None)
    if model is None:
        raise ModelNotFound(model_id)
    return jsonify(model_object(model))
