"""Seed 001's provider-key API and activity log: a user's own keys, encrypted, one selected per provider.

The rules live in blueprints/provider_key_service.py, shared with the /provider-keys page; this
module only reads JSON, calls the service and answers JSON.
"""
from flask import Blueprint, g, jsonify, request

from blueprints import provider_key_service as service
from blueprints.api import read_json_body
from blueprints.api.detail import detail_api, int_arg, managing
from extensions import db
from gateway.errors import GatewayError

bp = Blueprint("provider_keys", __name__, url_prefix="/api/v1")
detail_api(bp)


@bp.post("/provider-keys")
@bp.post("/provider-keys/")
@managing
def create_key():
    body = _json_object()
    key = service.create(g.caller.user_id, body.get("provider_name"), body.get("api_key"), body.get("name"),
                         body.get("base_url"))
    db.session.commit()
    return jsonify(key.as_json()), 201


@bp.get("/provider-keys")
@bp.get("/provider-keys/")
def list_keys():
    return jsonify([k.as_json() for k in service.keys_of(g.caller.user_id, request.args.get("provider"))])


@bp.get("/provider-keys/<key_id>")
def get_key(key_id):
    return jsonify(owned(key_id).as_json())


@bp.patch("/provider-keys/<key_id>")
@managing
def update_key(key_id):
    key, body = owned(key_id), _json_object()
    if "name" in body:
        service.rename(key, body["name"])
    if "api_key" in body:                      # replacing the secret is how an invalid key is fixed
        service.replace_secret(key, body["api_key"])
    if "is_selected" in body:
        if not isinstance(body["is_selected"], bool):
            raise GatewayError(400, "'is_selected' must be true or false.", code="invalid_parameter")
        service.select(key, body["is_selected"])
    db.session.commit()
    return jsonify(key.as_json())


@bp.delete("/provider-keys/<key_id>")
@managing
def delete_key(key_id):
    service.delete(owned(key_id))
    db.session.commit()
    return "", 204


@bp.delete("/provider-keys")
@bp.delete("/provider-keys/")
@managing
def delete_provider_keys():
    service.delete_provider(g.caller.user_id, request.args.get("provider_name"))
    db.session.commit()
    return "", 204


@bp.get("/activity-logs")
def activity_logs():
    rows = service.recent_activity(g.caller.user_id, int_arg("limit", 50, 1, 500))
    return jsonify([row.as_json() for row in rows])


def owned(public_id):
    """The caller's key by `pk_…` id.

    :raise GatewayError: 404, also for another user's id (it looks exactly like a missing one).
    """
    key = service.find_owned(g.caller.user_id, public_id)
    if key is None:
        raise GatewayError(404, "Provider key not found.", code="not_found")
    return key


def _json_object():
    body = read_json_body()
    if not isinstance(body, dict):
        raise GatewayError(400, "The request body must be a JSON object.", code="invalid_json")
    return body
