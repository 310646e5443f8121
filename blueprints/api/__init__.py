"""The OpenAI-compatible API under /v1: JSON only, Bearer/x-api-key auth, OpenAI error shape."""
import json
import uuid

from flask import Blueprint, g, jsonify, request
from werkzeug.exceptions import HTTPException

from gateway.errors import BadRequest, GatewayError
from gateway.shapes import error_body

bp = Blueprint("v1", __name__, url_prefix="/v1")


def read_json_body():
    """Parse the body ourselves so every failure has our shape (and deep nesting cannot crash us).

    :raise BadRequest: invalid JSON.
    """
    raw = request.get_data(cache=False)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("The request body is not valid JSON.", code="invalid_json") from None


@bp.before_request
def assign_request_id():
    g.request_id = uuid.uuid4().hex


@bp.after_request
def add_request_id(response):
    response.headers["X-Request-ID"] = g.get("request_id", "")
    return response


@bp.errorhandler(GatewayError)
def gateway_error(exc):
    return openai_error(exc.status, exc.message, exc.type, exc.code, exc.param, exc.extra)


@bp.errorhandler(HTTPException)
def http_error(exc):
    return openai_error(exc.code, exc.description, "invalid_request_error", exc.name.lower().replace(" ", "_"))


def openai_error(status, message, type_="invalid_request_error", code=None, param=None, extra=None):
    response = jsonify(error_body(message, type_, code, param, extra))
    response.status_code = status
    response.headers["X-Request-ID"] = g.get("request_id", "")
    return response


from blueprints.api import chat, embeddings, models  # noqa: E402,F401  (routes register on bp)
