"""Sign-up throttling, equal work for unknown usernames, and password hashing off the gevent loop."""
import subprocess
import sys
from pathlib import Path

import pytest
from web_client import WebUser, web  # noqa: F401  (web is a fixture)

from extensions import db
from models import User, passwords

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(make_app):
    return make_app(REGISTER_RATE_LIMIT="2 per minute")


def usernames(app):
    with app.app_context():
        return set(db.session.scalars(db.select(User.username)))


def client_at(app, address, **environ):
    """A browser whose TCP peer address is `address` (plus any extra WSGI environ, e.g. headers)."""
    user = WebUser(app.test_client())
    user.client.environ_base.update({"REMOTE_ADDR": address, **environ})
    return user


def test_registration_is_throttled_per_address(app, web):
    """Past the limit an address gets 429 with Retry-After and no account; another address still signs up."""
    assert web().register("alice").status_code == 302
    assert web().register("bob").status_code == 302
    refused = web().register("carol")
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert web().get("/register").status_code == 200                 # only POSTs count
    assert client_at(app, "192.0.2.7").register("dave").status_code == 302
    assert usernames(app) == {"alice", "bob", "dave"}


def test_forwarded_for_is_ignored_without_trusted_proxies(app):
    """TRUSTED_PROXIES=0 (the default): a client-sent X-Forwarded-For buys no fresh allowance."""
    statuses = [client_at(app, "127.0.0.1", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").register(f"user{n}").status_code
                for n in range(3)]
    assert statuses == [302, 302, 429]
    assert usernames(app) == {"user0", "user1"}


def test_login_of_an_unknown_user_does_the_same_hashing(app, web, monkeypatch):
    """An unknown name is verified against one fixed dummy hash of the real scheme, like a known name."""
    web("alice")
    checked = []
    real_check = passwords.check_password_hash
    monkeypatch.setattr(passwords, "check_password_hash",
                        lambda stored, password: checked.append(stored) or real_check(stored, password))
    visitor = client_at(app, "192.0.2.8")
    for name in ("nobody", "nobody-else"):
        response = visitor.login(name, password="guess-password")
        assert response.status_code == 401 and "Wrong username or password." in response.get_data(as_text=True)
    assert visitor.login("alice", password="guess-password").status_code == 401
    with app.app_context():
        alice_hash = db.session.scalar(db.select(User.password_hash).filter_by(username="alice"))
    dummy = checked[0]
    assert checked == [dummy, dummy, alice_hash]
    assert dummy.split("$")[0] == alice_hash.split("$")[0]             # same scheme and cost parameters


GEVENT_SCRIPT = """
from gevent import monkey
monkey.patch_all()
import time
import gevent
from werkzeug.security import check_password_hash
from models import passwords

ticks = []
def ticker():
    while True:
        ticks.append(time.perf_counter())
        gevent.sleep(0.001)

gevent.spawn(ticker)
gevent.sleep(0.01)
start = time.perf_counter()
jobs = [gevent.spawn(passwords.hash_password, f"password-{n}") for n in range(JOBS)]
gevent.joinall(jobs, raise_error=True)
end = time.perf_counter()
assert all(check_password_hash(job.value, f"password-{n}") for n, job in enumerate(jobs))
print(sum(start <= t <= end for t in ticks))
"""


def test_hashing_runs_off_the_gevent_loop():
    """Under gevent, hashing in several greenlets leaves the loop free: a 1 ms ticker keeps running.

    Hashed on the loop itself the ticker could tick at most between two hashes (JOBS - 1 times).
    """
    jobs = 6
    result = subprocess.run([sys.executable, "-c", GEVENT_SCRIPT.replace("JOBS", str(jobs))], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 3 * jobs
