"""CORS for the API routes (/v1, /api, /billing; never the web pages), so browser apps may call the
gateway with a key: origins from `[security] cors_origins` (none by default, `*` allowed).

Credentials are never allowed (no Access-Control-Allow-Credentials): a cross-origin page can use
an API key it holds, never the session cookie of someone signed in to the gateway. A preflight is
answered here, before authentication, since browsers send it without the Authorization header.
"""
from flask import current_app, request

API_PREFIXES = ("/v1", "/api", "/billing")
_API_TREES = tuple(prefix + "/" for prefix in API_PREFIXES)
METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOWED_HEADERS = ("Authorization", "Content-Type", "x-api-key", "anthropic-version", "anthropic-beta",
                   "anthropic-dangerous-direct-browser-access")
EXPOSED_HEADERS = ("X-Request-ID, X-Gateway-Model, X-Gateway-Provider, X-Gateway-Attempts, X-Gateway-Dropped-Params, "
                   "X-Credits-Charged, X-Credits-Reserved, X-Credits-Remaining, X-RateLimit-Limit, "
                   "X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After")
PREFLIGHT_MAX_AGE_S = 600


def init_app(app):
    """Only when origins are configured: otherwise no request pays for it."""
    origins = app.extensions["gateway"].settings.cors_origins
    if not origins:
        return
    key_headers = tuple(p.key_header for p in app.extensions["gateway"].settings.providers.values() if p.key_header)
    app.extensions["cors"] = (frozenset(origins), ", ".join(ALLOWED_HEADERS + key_headers))
    app.before_request(answer_preflight)
    app.after_request(add_headers)


def answer_preflight():
    """204 for an allowed origin's preflight of an API route, with what it may send."""
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        return None
    allowed = _allowed_origin()
    if allowed is None:
        return None
    _, headers = current_app.extensions["cors"]
    requested = request.headers.get("Access-Control-Request-Headers")      # an SDK's own (x-stainless-…) too
    response = current_app.response_class(status=204)
    response.headers.update({"Access-Control-Allow-Origin": allowed, "Access-Control-Allow-Methods": METHODS,
                             "Access-Control-Allow-Headers": f"{headers}, {requested}" if requested else headers,
                             "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S), "Vary": "Origin"})
    return response


def add_headers(response):
    allowed = _allowed_origin()
    if allowed is not None and "Access-Control-Allow-Origin" not in response.headers:
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        response.vary.add("Origin")
    return response


def _allowed_origin():
    """The Access-Control-Allow-Origin value for this request, or None (not an API route, origin not allowed)."""
    origin = request.headers.get("Origin")
    if not origin or not (request.path in API_PREFIXES or request.path.startswith(_API_TREES)):
        return None
    origins, _ = current_app.extensions["cors"]
    if "*" in origins:
        return "*"
    return origin if origin in origins else None
