"""The OpenAI-compatible API under /v1: JSON only, Bearer/x-api-key auth, OpenAI error shape."""
import math

from flask import Blueprint, g, jsonify, request
from werkzeug.exceptions import HTTPException

from gateway import jsonbody
from gateway.errors import GatewayError
from gateway.shapes import error_body
from models.request_log import new_request_id

bp = Blueprint("v1", __name__, url_prefix="/v1")


def read_json_body():
    """The request's JSON, for every JSON route of every family (each renders the error in its own shape).

    :raise BadRequest: see `gateway.jsonbody.parse`.
    """
    return jsonbody.parse(request.get_data(cache=False))


@bp.before_request
def assign_request_id():
    """Every API blueprint's first step (/v1, the Anthropic family, /api/v1): the request's id."""
    g.request_id = new_request_id()


@bp.after_request
def add_request_id(response):
    response.headers["X-Request-ID"] = g.get("request_id", "")
    return response


@bp.errorhandler(GatewayError)
def gateway_error(exc):
    return with_retry_after(openai_error(exc.status, exc.message, exc.type, exc.code, exc.param, exc.extra), exc)


def with_retry_after(response, exc):
    """Every API family sends a GatewayError's `retry_after` (a rate limit, a cooled provider key) as Retry-After."""
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return response


@bp.errorhandler(HTTPException)
def http_error(exc):
    return openai_error(exc.code, exc.description, "invalid_request_error", exc.name.lower().replace(" ", "_"))


def openai_error(status, message, type_="invalid_request_error", code=None, param=None, extra=None):
    response = jsonify(error_body(message, type_, code, param, extra))
    response.status_code = status
    response.headers["X-Request-ID"] = g.get("request_id", "")
    return response


from blueprints.api import (audio, chat, completions, embeddings, images, models, moderations,  # noqa: E402,F401
                           rerank, responses)  # (routes register on bp)
