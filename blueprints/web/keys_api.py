"""POST /api/keys for a signed-in browser session: JSON in, the new key out (shown once).

Cookie-authenticated, so it is CSRF-protected like any form (send `X-CSRFToken`). Errors use
the `{"detail", "code", "error_type"}` shape of the other /api account routes.
"""
from flask import Blueprint, jsonify
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from blueprints.api import read_json_body
from blueprints.api.detail import detail_error
from blueprints.web import key_forms
from blueprints.web.keys import create_key
from blueprints.web.security import protect
from gateway.errors import GatewayError

bp = protect(Blueprint("web_api", __name__, url_prefix="/api"))


@bp.errorhandler(HTTPException)
def http_error(exc):
    return detail_error(exc.code, exc.description, exc.name.lower().replace(" ", "_"))


@bp.errorhandler(GatewayError)
def gateway_error(exc):
    return detail_error(exc.status, exc.message, exc.code or exc.type)


@bp.post("/keys")
def create():
    if not current_user.is_authenticated:
        return detail_error(401, "Log in first (this route uses the browser session).", "not_authenticated")
    body = read_json_body()
    if not isinstance(body, dict) or not isinstance(body.get("name", ""), str):
        return detail_error(400, "Send a JSON object like {\"name\": \"my laptop\"}.", "invalid_json")
    try:
        row, raw = create_key(body.get("name"))
    except key_forms.FormError as exc:
        return detail_error(400, str(exc), "invalid_parameter")
    response = jsonify({"id": row.id, "name": row.name, "key": raw})
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response
