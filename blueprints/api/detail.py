"""The `{"detail", "code", "error_type"}` API family (seeds 001, 002, 004): key auth, errors, paging."""
import functools

from flask import g, jsonify, request
from werkzeug.exceptions import HTTPException

from blueprints.api import with_retry_after
from blueprints.api.auth import authenticate, require_manager
from gateway.errors import GatewayError

MAX_PAGE = 100


def detail_api(bp, public=()):
    """Make `bp` authenticate every route by API key (except the `public` endpoints) and answer errors in this family."""
    @bp.before_request
    def require_key():
        if request.endpoint not in {f"{bp.name}.{name}" for name in public}:
            g.caller = authenticate()

    @bp.errorhandler(GatewayError)
    def gateway_error(exc):
        return with_retry_after(detail_error(exc.status, exc.message, exc.code or exc.type), exc)

    @bp.errorhandler(HTTPException)
    def http_error(exc):
        return detail_error(exc.code, exc.description, exc.name.lower().replace(" ", "_"))


def managing(view):
    """For routes that change the owner's keys: a key with limits of its own may not (403)."""
    @functools.wraps(view)
    def checked(*args, **kwargs):
        require_manager(g.caller)
        return view(*args, **kwargs)
    return checked


def detail_error(status, message, error_type):
    response = jsonify({"detail": message, "code": status, "error_type": error_type})
    response.status_code = status
    return response


def int_arg(name, default, low, high):
    """A bounded integer query parameter.

    :raise GatewayError: 400 naming the parameter.
    """
    raw = request.args.get(name, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise GatewayError(400, f"'{name}' must be an integer.", code="invalid_parameter") from None
    if not low <= value <= high:
        raise GatewayError(400, f"'{name}' must be between {low} and {high}.", code="invalid_parameter")
    return value
