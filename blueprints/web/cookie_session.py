"""Flask's signed-cookie session, without its cost where no session is used.

Flask builds the itsdangerous signing serializer on every request, before it looks for a cookie
to read, and saves the session after every answer. API calls never carry a session cookie, and
/v1 never uses a session at all (keys and tokens only, blueprints/api/auth.py): on the hot path
that was a measurable share of a request.
"""
from flask.sessions import SecureCookieSessionInterface

SESSIONLESS_PREFIX = "/v1/"     # the OpenAI- and Anthropic-compatible API


class CookieSessionInterface(SecureCookieSessionInterface):
    """The same sessions and cookies; a request without the cookie starts an empty session directly,
    and a /v1 request gets Flask's null session (read as empty, never saved, refuses writes)."""

    def open_session(self, app, request):
        if request.path.startswith(SESSIONLESS_PREFIX):
            return self.make_null_session(app)
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)
