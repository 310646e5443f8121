"""The barrier test: balance for exactly one request, 20 concurrent requests, real gunicorn workers,
on SQLite and on a real PostgreSQL server. At most one reaches the upstream; money adds up."""
import contextlib
import os
import signal
import threading
import time

import pytest
import requests
import sqlalchemy as sa

from conftest import make_key, make_user, served_gateway
from extensions import db
from fake_upstream import Fault
from ledger import MICRO, money
from models import credit
from servers import create_database, gunicorn_server, wait_until_up, worker_pids

CONCURRENT = 20
PRICE = 0.01                               # USD per request: the reservation is exactly this


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_concurrent_requests_never_spend_more_than_the_balance(request, kind, workers, tmp_path, upstream):
    postgres_url = request.getfixturevalue("postgres") if kind == "postgresql" else None
    database = (create_database(postgres_url, f"barrier_{workers}") if kind == "postgresql"
                else f"sqlite:///{tmp_path / 'gateway.sqlite'}")
    app, user_id, key, env = priced_gateway(database, tmp_path, upstream)
    upstream.script(Fault.slow(0.3))                  # the first request is still in flight when the rest arrive
    barrier, statuses = threading.Barrier(CONCURRENT), []

    def one_request(base):
        barrier.wait()
        response = requests.post(base + "/v1/chat/completions", timeout=30, headers={"Authorization": f"Bearer {key}"},
                                 json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]})
        statuses.append(response.status_code)

    with gunicorn_server(env, workers=workers) as base:
        threads = [threading.Thread(target=one_request, args=(base,)) for _ in range(CONCURRENT)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert sorted(statuses) == [200] + [402] * (CONCURRENT - 1)
    assert len(upstream.requests) == 1
    balance, reserved, ledger_sum, rows = money(app, user_id)
    assert (balance, reserved, ledger_sum) == (0, 0, 0)
    assert [kind for kind, _ in rows] == ["grant", "charge"]
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT count(*) FROM reservations WHERE status = 'held'")) == 0
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_users_sharing_write_batches_are_each_held_and_charged_only_their_own(request, kind, tmp_path, upstream):
    """Through 2 workers, whose group commits mix both users' holds and settlements in one transaction:
    alice, with credit for one request, gets one answer and 402s; bob, with credit for all of his, gets
    every answer. Neither's refusals, holds or charges touch the other's balance."""
    postgres_url = request.getfixturevalue("postgres") if kind == "postgresql" else None
    database = (create_database(postgres_url, "barrier_two_users") if kind == "postgresql"
                else f"sqlite:///{tmp_path / 'gateway.sqlite'}")
    app, alice, alice_key, env = priced_gateway(database, tmp_path, upstream)
    bob = make_user(app, "bob")
    bob_key = make_key(app, bob)
    with app.app_context():
        credit.grant(bob, round(CONCURRENT * PRICE * MICRO))
        db.session.commit()
    upstream.script(Fault.slow(0.3))
    barrier, statuses = threading.Barrier(2 * CONCURRENT), {alice_key: [], bob_key: []}

    def one_request(base, key):
        barrier.wait()
        response = requests.post(base + "/v1/chat/completions", timeout=30, headers={"Authorization": f"Bearer {key}"},
                                 json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]})
        statuses[key].append(response.status_code)

    with gunicorn_server(env, workers=2) as base:
        threads = [threading.Thread(target=one_request, args=(base, key))
                   for key in (alice_key, bob_key) for _ in range(CONCURRENT)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert sorted(statuses[alice_key]) == [200] + [402] * (CONCURRENT - 1)
    assert statuses[bob_key] == [200] * CONCURRENT
    assert money(app, alice)[:3] == (0, 0, 0)
    assert money(app, bob)[:3] == (0, 0, 0)
    assert [kind for kind, _ in money(app, alice)[3]] == ["grant", "charge"]
    assert [kind for kind, _ in money(app, bob)[3]] == ["grant"] + ["charge"] * CONCURRENT
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT count(*) FROM reservations WHERE status = 'held'")) == 0
    with app.app_context():
        db.engine.dispose()


def priced_gateway(database, tmp_path, upstream):
    """A one-model configuration file, a user with credit for exactly one request, and the server's environment."""
    app, env = served_gateway(tmp_path, f"""
[demo]
enabled = false
[retry]
max_attempts = 1
[providers.openai]
type = "openai"
base_url = "{upstream.url}/v1"
api_keys = ["key-a"]
[models.m1]
provider = "openai"
per_request = {PRICE}
""", database)
    user_id = make_user(app)
    key = make_key(app, user_id)
    with app.app_context():
        credit.grant(user_id, round(PRICE * MICRO))
        db.session.commit()
    return app, user_id, key, env


def test_killed_worker_reservation_is_released_by_the_sweeper(tmp_path, upstream):
    """A worker killed mid-request leaves its hold; the sweeper gives it back and nothing is charged."""
    database = f"sqlite:///{tmp_path / 'gateway.sqlite'}"
    app, user_id, key, env = priced_gateway(database, tmp_path, upstream)
    upstream.script(Fault.slow(5))

    def doomed(base):
        with contextlib.suppress(requests.RequestException):
            requests.post(base + "/v1/chat/completions", timeout=10, headers={"Authorization": f"Bearer {key}"},
                          json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]})

    with gunicorn_server(env, workers=1) as base:
        caller = threading.Thread(target=doomed, args=(base,))
        caller.start()
        deadline = time.monotonic() + 5
        while not upstream.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert upstream.requests, "the request never reached the upstream"
        for worker in worker_pids(base):
            os.kill(worker, signal.SIGKILL)
        caller.join(15)
        wait_until_up(base)                                       # gunicorn replaced the dead worker
    with app.app_context():
        assert credit.available_balance(user_id) == 0            # the dead worker's hold is still there
        assert credit.sweep(older_than_s=0) == 1
        assert credit.available_balance(user_id) == round(PRICE * MICRO)
    balance, reserved, ledger_sum, rows = money(app, user_id)
    assert (reserved, balance, ledger_sum) == (0, round(PRICE * MICRO), balance)
    assert [kind for kind, _ in rows] == ["grant"]
    with app.app_context():
        db.engine.dispose()
