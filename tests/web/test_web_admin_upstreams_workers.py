"""/admin/upstreams under gunicorn: a circuit opened through one worker is shown by the other.

Which worker serves a new connection is the kernel's choice, so the test makes it: while one worker
is stopped (SIGSTOP), only the other accepts; each step runs on a fresh connection.
"""
import os
import re
import signal
from contextlib import contextmanager

import requests
from fake_upstream import Fault

from helpers import served_toml
from conftest import make_key, make_user, served_gateway
from extensions import db
from servers import gunicorn_server, worker_pids

PASSWORD = "correct-horse-battery"


@contextmanager
def only(served_by, workers):
    """Let only the worker `served_by` accept connections while the block runs."""
    others = [pid for pid in workers if pid != served_by]
    for pid in others:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in others:
            os.kill(pid, signal.SIGCONT)


def admin_page(base, path):
    """Log in as the admin on a fresh session and GET `path`."""
    browser = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(base + "/login", timeout=10).text).group(1)
    login = browser.post(base + "/login", data={"username": "root", "password": PASSWORD, "csrf_token": token},
                         timeout=10, allow_redirects=False)
    assert login.status_code == 302
    return browser.get(base + path, timeout=10).text


def test_a_circuit_opened_through_one_worker_shows_on_the_page_served_by_the_other(tmp_path, upstream):
    settings = """
[retry]
max_attempts = 1
[circuit_breaker]
failure_threshold = 1
distinct_callers = 1
"""
    app, env = served_gateway(tmp_path, served_toml(upstream, settings))
    make_user(app, "root", PASSWORD, role="admin")
    key = make_key(app, make_user(app, "carol"))
    with app.app_context():
        db.engine.dispose()
    upstream.script(Fault.status(503))

    with gunicorn_server(env, workers=2) as base:
        first, second = workers = worker_pids(base)
        with only(first, workers):
            failed = requests.post(base + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                   json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)
            assert failed.status_code == 502            # the one candidate's upstream error
        with only(second, workers):
            page = " ".join(admin_page(base, "/admin/upstreams").split())

    assert f"served by worker {second}" in page
    assert "<tr><td>m1</td><td>open</td><td>1</td></tr>" in page
