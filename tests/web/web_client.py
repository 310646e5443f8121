"""Web-page test client: a browser-like session that registers, logs in and sends CSRF tokens.

Not a conftest.py on purpose: the suite imports helpers with `from conftest import ...`, and a
second conftest module would shadow the root one. Test modules import the `web` fixture from here.
"""
import re
import time

import pytest
from web_checks import named_events

from blueprints.web.chat_generation import LIVE

PASSWORD = "correct-horse-battery"
_FORM_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_META_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class WebUser:
    """One browser session: form posts carry the CSRF token like the real pages do."""

    def __init__(self, client):
        self.client = client
        self.token = None

    def register(self, username, password=PASSWORD, confirm=None):
        token = _FORM_TOKEN.search(self.client.get("/register").get_data(as_text=True)).group(1)
        response = self.client.post("/register", data={"username": username, "password": password,
                                                       "confirm": password if confirm is None else confirm,
                                                       "csrf_token": token})
        self.refresh_token()
        return response

    def login(self, username, password=PASSWORD, **query):
        token = _FORM_TOKEN.search(self.client.get("/login").get_data(as_text=True)).group(1)
        response = self.client.post("/login", query_string=query,
                                    data={"username": username, "password": password, "csrf_token": token})
        self.refresh_token()
        return response

    def refresh_token(self):
        """The session is rotated at login, so the token is read again from a page."""
        match = _META_TOKEN.search(self.client.get("/models").get_data(as_text=True))
        self.token = match.group(1) if match else None

    def post(self, path, data=None, htmx=True, **kwargs):
        """A same-site htmx post: the token travels in the X-CSRFToken header (hx-headers on <body>)."""
        headers = {"X-CSRFToken": self.token, **({"HX-Request": "true"} if htmx else {}), **kwargs.pop("headers", {})}
        return self.client.post(path, data=data, headers=headers, **kwargs)

    def get(self, path, **kwargs):
        return self.client.get(path, **kwargs)


@pytest.fixture
def web(app):
    """`web("alice")` → a registered, logged-in WebUser on the app (the first one is the admin).

    At the end, every chat answer the test started has been written out (none outlives its database)."""
    def make(username=None):
        user = WebUser(app.test_client())
        if username:
            user.register(username)
        return user
    yield make
    deadline = time.monotonic() + 15
    while LIVE.ids and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not LIVE.ids, "a chat answer was still being written when its test ended"



def new_conversation(user, model="demo-chat"):
    """Start a conversation through the page; returns its id."""
    response = user.post("/chat/new", data={"model": model}, htmx=False)
    assert response.status_code == 302
    return int(response.location.rsplit("/", 1)[1])


def ask(user, conversation_id, content, model="demo-chat"):
    """Post a question like the composer does; returns the stream URL of the pending answer."""
    response = user.post(f"/chat/{conversation_id}/messages", data={"content": content, "model": model})
    assert response.status_code == 200, response.get_data(as_text=True)
    return re.search(r'sse-connect="([^"]+)"', response.get_data(as_text=True)).group(1)


def stream(user, url, **kwargs):
    """Read a whole answer stream; returns its named events."""
    with user.get(url, **kwargs) as response:
        assert response.status_code == 200 and response.mimetype == "text/event-stream"
        return named_events(response.get_data())
