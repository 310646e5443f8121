"""The browser pages (session login, CSRF-protected forms, htmx)."""
from flask import redirect, url_for
from flask_login import current_user

from blueprints import throttling
from blueprints.web import security
from blueprints.web.cookie_session import CookieSessionInterface


def register_web(app):
    """Register the page blueprints and the session-side machinery they need.

    CSRF, login and sign-up throttling and the login manager are bound here, not in the factory, so the
    header-authenticated /v1 API is untouched by any of them; only the security headers
    apply to every response.
    """
    from blueprints.web import admin, auth, chat, credits, keys, keys_api, models_page, provider_keys_page, usage

    app.session_interface = CookieSessionInterface()
    security.init_app(app)
    auth.init_login_manager(app)
    for module in (auth, chat, keys, keys_api, models_page, provider_keys_page, credits, usage, admin):
        app.register_blueprint(module.bp)
    throttling.throttle(app, "auth.login", app.config.get("LOGIN_RATE_LIMIT", "10 per minute"))
    throttling.throttle(app, "auth.register", app.config["REGISTER_RATE_LIMIT"])
    app.add_url_rule("/", "index", _index)


def _index():
    """The home page is the chat for a signed-in user, else the login form."""
    return redirect(url_for("chat.index") if current_user.is_authenticated else url_for("auth.login"))
