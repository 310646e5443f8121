"""Chat answers under gunicorn with 2 gevent workers: the answer is written by a greenlet of the
worker that took the question, and a page on any connection (so any worker) follows it to the end."""
import re

import requests

from helpers import served_toml
from conftest import make_user, served_gateway
from fake_upstream import Fault
from gateway.sse import iter_events
from servers import gunicorn_server

REPLY = "Written in the background and followed from any worker."
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def signed_in(base):
    """A browser-like session: logged in, with the CSRF token htmx would send."""
    session = requests.Session()
    token = _TOKEN.search(session.get(base + "/login", timeout=10).text).group(1)
    assert session.post(base + "/login", data={"username": "alice", "password": "correct-horse", "csrf_token": token},
                        timeout=10).status_code == 200
    page = session.get(base + "/chat", timeout=10).text
    session.headers["X-CSRFToken"] = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    return session


def test_an_answer_asked_on_one_connection_is_followed_to_the_end_on_others(tmp_path, upstream):
    upstream.reply_text, upstream.chunks = REPLY, 6
    upstream.script(Fault.paced(0.3))
    app, env = served_gateway(tmp_path, served_toml(upstream))
    make_user(app)
    with gunicorn_server(env, workers=2) as base:
        for round_ in range(3):
            with signed_in(base) as asker:
                started = asker.post(base + "/chat/new", data={"model": "m1"}, timeout=10)
                conversation = started.url.rsplit("/", 1)[1]
                posted = asker.post(f"{base}/chat/{conversation}/messages", headers={"HX-Request": "true"},
                                    data={"content": "go on", "model": "m1"}, timeout=10)
                url = re.search(r'sse-connect="([^"]+)"', posted.text).group(1)
            with signed_in(base) as follower:              # the asker is gone; a new connection follows
                body = follower.get(base + url, timeout=20).content
            events = [(event.event, event.data) for event in iter_events(body.split(b"\n"))]
            growing = [data for name, data in events if name == "token"]      # the rendered text so far, each time
            assert growing and events[-1][0] == "done" and "Answered by" in events[-1][1]
            assert f'<div class="msg-body"><p>{REPLY}</p>' in events[-1][1]
            assert len(upstream.requests) == round_ + 1
