"""Browser-side protections: CSRF on session-authenticated writes, security headers.

CSRF is checked only by the web blueprints (`protect(bp)`), never app-wide: /v1 routes are
authenticated by a header a cross-site page cannot send, so they need no token.
"""
from flask import current_app, request
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

# htmx is configured (meta tag in base.html) not to inject its indicator <style>, so no
# 'unsafe-inline' is needed anywhere; Pico's icons are data: SVGs, hence img-src data:.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    "connect-src 'self'", "object-src 'none'", "base-uri 'self'", "form-action 'self'", "frame-ancestors 'none'",
])
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def init_app(app):
    """Bind CSRF (checked only where `protect` asks) and the headers."""
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    # The token lives as long as the session: a chat tab left open for hours must still post.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    csrf.init_app(app)
    app.after_request(add_security_headers)


def protect(bp):
    """Require a valid CSRF token on every unsafe request routed to `bp`."""
    @bp.before_request
    def check_csrf():
        if request.method not in SAFE_METHODS and current_app.config.get("WTF_CSRF_ENABLED", True):
            csrf.protect()
    return bp


def add_security_headers(response):
    """Each of the headers that the view did not set itself (added in one step: this runs on every answer)."""
    present = {name.lower() for name in response.headers.keys()}
    response.headers.extend([(name, value) for name, value in SECURITY_HEADERS.items() if name.lower() not in present])
    return response
