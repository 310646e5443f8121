"""Flask's signed-cookie session, without its cost on the requests that carry no session cookie.

Flask builds the itsdangerous signing serializer on every request, before it looks for a cookie
to read. API calls never carry one, and on the hot path that is a measurable share of a request.
"""
from flask.sessions import SecureCookieSessionInterface


class CookieSessionInterface(SecureCookieSessionInterface):
    """The same sessions and cookies; a request without the cookie starts an empty session directly."""

    def open_session(self, app, request):
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)
