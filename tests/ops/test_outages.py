"""A lost database fails closed (RELIABILITY A5): PostgreSQL stopped under load behind gunicorn gets
fast 503s in each family's shape, no 500, no upstream call and no charge while it is gone, and full
service again once it is back, without restarting the gateway. A worker killed mid-request on
PostgreSQL loses no money either."""
import contextlib
import os
import signal
import threading
import time

import pytest
import requests

from billing.ledger import MICRO, money
from helpers import served_toml
from conftest import make_key, make_user, served_gateway
from extensions import db
from fake_upstream import Fault
from models import credit
from servers import create_database, gunicorn_server, postgres_bin, postgres_cluster, wait_until_up, worker_pids

PRICE = 0.001                   # USD per request
CREDIT = 10.0                   # enough for every request of the load below
DEADLINE_S = 10.0               # the gateway's request deadline in these tests
FAST_S = 3.0                    # a refusal must come well inside the deadline
CHAT = "/v1/chat/completions"
BODY = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def cluster():
    """A PostgreSQL cluster of this test's own, since the test stops and starts it."""
    if postgres_bin() is None:
        if os.environ.get("GATEWAY_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is required here (apt-get install postgresql)")
        pytest.skip("PostgreSQL server binaries are not installed")
    with postgres_cluster() as server:
        yield server


def priced_gateway(database, tmp_path, upstream, amount):
    """A one-model configuration file, a user with `amount` USD of credit, and the server's environment."""
    settings = f"""
[routing]
request_timeout_s = {DEADLINE_S}
[retry]
max_attempts = 1
[limits]                  # the load below sends far more than 60 requests a minute for its one user
user_per_minute = 0
global_per_hour = 0
"""
    models = f"""
[models.m1]
provider = "openai"
per_request = {PRICE}
"""
    app, env = served_gateway(tmp_path, served_toml(upstream, settings, models=models), database)
    user_id = make_user(app)
    key = {"Authorization": f"Bearer {make_key(app, user_id)}"}
    with app.app_context():
        credit.grant(user_id, round(amount * MICRO))
        db.session.commit()
        db.engine.dispose()       # the test's own connections must not outlive the server's restart
    return app, user_id, key, env


class Load:
    """Clients sending chat requests in a loop, each on a fresh connection (spread over the workers)."""

    def __init__(self, base, headers, clients=6):
        self.base, self.headers = base, headers
        self.results = []         # (sent at, status, seconds, body)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client) for _ in range(clients)]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(DEADLINE_S + 5)

    def _client(self):
        while not self._stop.is_set():
            sent = time.monotonic()
            response = requests.post(self.base + CHAT, headers=self.headers, json=BODY, timeout=DEADLINE_S + 5)
            self.results.append((sent, response.status_code, time.monotonic() - sent, response.json()))


def until(check, timeout=15.0):
    """Poll `check` until it is true; the seconds that took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "the gateway did not recover in time"
        time.sleep(0.2)
    return time.monotonic() - started


def test_postgresql_lost_under_load_fails_closed_and_recovers_without_restart(cluster, tmp_path, upstream):
    database = create_database(cluster.url, "outage")
    app, user_id, key, env = priced_gateway(database, tmp_path, upstream, CREDIT)
    with gunicorn_server(env, workers=2) as base, Load(base, key) as load:
        time.sleep(1.5)
        cluster.stop()
        time.sleep(0.5)           # requests that wrote their hold just before the stop reach the upstream now
        down_from, calls_before = time.monotonic(), len(upstream.requests)

        time.sleep(3)
        ready = requests.get(base + "/ready", timeout=5)
        health = requests.get(base + "/health", timeout=5)
        live = requests.get(base + "/health/live", timeout=5)
        anthropic = requests.post(base + "/v1/messages", headers=key, timeout=DEADLINE_S + 5,
                                  json={"model": "m1", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
        account = requests.get(base + "/api/user", headers=key, timeout=DEADLINE_S + 5)
        calls_while_down, down_until = len(upstream.requests) - calls_before, time.monotonic()

        cluster.start()
        recovered_in = until(lambda: requests.get(base + "/ready", timeout=5).status_code == 200)
        until(lambda: load.results[-1][1] == 200)
        time.sleep(1.5)
        after = [requests.post(base + CHAT, headers=key, json=BODY, timeout=DEADLINE_S + 5) for _ in range(6)]

    assert (ready.status_code, ready.json()) == (503, {"status": "unavailable", "reason": "database unavailable"})
    assert ready.elapsed.total_seconds() < FAST_S
    assert health.status_code == 503 and health.json()["status"] == "unhealthy"
    assert health.json()["components"]["database"] == "down"
    assert live.status_code == 200
    assert anthropic.status_code == 503 and anthropic.json()["type"] == "error"
    assert account.status_code == 503 and account.json()["error_type"] == "database_unavailable"
    assert calls_while_down == 0, "an upstream call went out while no hold could be written"
    assert recovered_in < 10
    assert [r.status_code for r in after] == [200] * 6

    statuses = [status for _, status, _, _ in load.results]
    assert set(statuses) <= {200, 503}, "no 500 (or anything else) while the database comes and goes"
    down = [(seconds, body) for sent, status, seconds, body in load.results if down_from <= sent < down_until]
    assert down and all(seconds < FAST_S for seconds, _ in down)
    assert all(body["error"]["code"] == "database_unavailable" for _, body in down)
    assert statuses.count(200) > 10 and statuses.count(503) > 10

    served = statuses.count(200) + len(after)
    with app.app_context():
        credit.sweep(older_than_s=0)          # a hold written just before the stop, whose settlement was lost
    balance, reserved, ledger_sum, rows = money(app, user_id)
    assert ledger_sum == balance and reserved == 0
    assert sum(1 for kind, _ in rows if kind == "charge") == served, "every answer served was charged, once"
    assert balance == round(CREDIT * MICRO) - served * round(PRICE * MICRO)
    with app.app_context():
        db.engine.dispose()


def test_killed_worker_on_postgresql_loses_no_money(postgres, tmp_path, upstream):
    """The PostgreSQL variant of tests/billing/test_barrier.py's SQLite one: the dead worker's hold is
    left, the sweeper gives it back, nothing is charged."""
    app, user_id, key, env = priced_gateway(create_database(postgres, "killed_worker"), tmp_path, upstream, PRICE)
    upstream.script(Fault.slow(5))

    def doomed(base):
        with contextlib.suppress(requests.RequestException):
            requests.post(base + CHAT, timeout=10, headers=key, json=BODY)

    with gunicorn_server(env, workers=1) as base:
        caller = threading.Thread(target=doomed, args=(base,))
        caller.start()
        until(lambda: upstream.requests, timeout=5)
        for worker in worker_pids(base):
            os.kill(worker, signal.SIGKILL)
        caller.join(15)
        wait_until_up(base)
    with app.app_context():
        assert credit.available_balance(user_id) == 0            # the dead worker's hold is still there
        assert credit.sweep(older_than_s=0) == 1
        assert credit.available_balance(user_id) == round(PRICE * MICRO)
    balance, reserved, ledger_sum, rows = money(app, user_id)
    assert (reserved, balance, ledger_sum) == (0, round(PRICE * MICRO), balance)
    assert [kind for kind, _ in rows] == ["grant"]
    with app.app_context():
        db.engine.dispose()
