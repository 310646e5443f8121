"""Rate limits at the HTTP edge: the X-RateLimit-* headers of every limited answer, and the
per-address limits of the unauthenticated routes (login and sign-up posts, the detailed /health).

The counting is gateway.ratelimits'; the API counts its key, user and global limits where it
authenticates (blueprints/api/auth.py). /health/live and /ready are never limited: load balancers
poll them. Only wrapped views and authenticated API calls are counted; other routes pay nothing.
"""
from functools import wraps

from flask import current_app, g, request
from limits import parse
from werkzeug.exceptions import TooManyRequests

from gateway import metrics
from gateway.ratelimits import Limit


def init_app(app):
    """Add the headers to every answer that counted a limit, and limit /health per address."""
    app.after_request(add_headers)
    throttle(app, "health.health", methods=("GET", "HEAD"))


def count(limits):
    """Count this request against `limits` (gateway.ratelimits.RateLimits.for_key / for_address).

    :return: the Window the answer's headers will report, or None when no limit applies.
    """
    window = current_app.extensions["rate_limits"].hit(limits)
    if window is not None:
        g.rate_limit = window
        if not window.allowed:
            metrics.record_rate_limited("ip" if window.scope not in ("key", "user", "global") else window.scope)
    return window


def throttle(app, endpoint, limit=None, methods=("POST",)):
    """Limit `methods` requests to `endpoint` per client address, by `limit` (e.g. "10 per minute",
    the route's own) and `[limits] ip_per_minute`, answering 429 with Retry-After.

    The address is the TCP peer's unless TRUSTED_PROXIES hops are configured (ProxyFix in the
    factory): a client-sent X-Forwarded-For cannot buy it a fresh allowance. Only the named view
    is wrapped, so no other route runs any of this.
    """
    own = parse(limit) if limit else None
    rate_limits = app.extensions["rate_limits"]
    view = app.view_functions[endpoint]

    @wraps(view)
    def throttled(*args, **kwargs):
        if request.method in methods:
            address = request.remote_addr or ""
            window = count(([Limit.of(own, (endpoint, address))] if own else []) + rate_limits.for_address(address))
            if window is not None and not window.allowed:
                wait = window.reset_in()
                raise TooManyRequests(f"Too many requests from your address; try again in {wait} seconds.",
                                      retry_after=wait)
        return view(*args, **kwargs)
    app.view_functions[endpoint] = throttled


def add_headers(response):
    """X-RateLimit-Limit/Remaining/Reset of the tightest limit this request counted against.

    Reset is in seconds from now (like Retry-After, which a refused answer carries as well). Set
    here from the server's own count, so whatever headers a client sent change nothing.
    """
    window = g.get("rate_limit")
    if window is not None:
        response.headers["X-RateLimit-Limit"] = str(window.limit)
        response.headers["X-RateLimit-Remaining"] = str(window.remaining)
        response.headers["X-RateLimit-Reset"] = str(window.reset_in())
    return response
