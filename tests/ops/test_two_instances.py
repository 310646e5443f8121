"""Several instances act as one: two gunicorn masters (two gevent workers each) on one PostgreSQL and
one Redis, behind a real nginx. A breaker opened through one instance is skipped by the other without
an upstream call, a key cooled by a 429 on one is not tried by the other, one rate limit holds across
both, and credits under a barrier of concurrent requests through both never overspend."""
import os
import shutil
import subprocess
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager

import pytest
import requests
import sqlalchemy as sa

from app import create_app
from conftest import TEST_ENCRYPTION_KEY, make_key, make_user
from extensions import db
from fake_upstream import Fault
from models import CreditTransaction, User, credit
from servers import create_database, free_port, gunicorn_server, redis_server

CHAT = "/v1/chat/completions"
PRICE = 0.01                      # USD per request on the priced model: the hold is exactly this
PAID_REQUESTS = 3                 # the user's credit covers this many
CONCURRENT = 20
MICRO = 1_000_000


def required(binary, package, flag):
    if shutil.which(binary) is None:
        if os.environ.get(flag) == "1":
            pytest.fail(f"{binary} is required here (apt-get install {package})")
        pytest.skip(f"{binary} is not installed (apt-get install {package})")


@contextmanager
def nginx(backends):
    """nginx round-robin in front of `backends` (base URLs), buffering off as for SSE; yields its base URL."""
    prefix = tempfile.mkdtemp(prefix="gw-nginx-")
    port = free_port()
    servers = "\n".join(f"    server {base.split('//', 1)[1]};" for base in backends)
    with open(os.path.join(prefix, "nginx.conf"), "w") as fh:
        fh.write(f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  upstream gateway {{
{servers}
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://gateway;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 60s;
    }}
  }}
}}
""")
    process = subprocess.Popen(["nginx", "-p", prefix, "-c", os.path.join(prefix, "nginx.conf"), "-g", "daemon off;"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.get(base + "/v1/models", timeout=2)
                break
            except requests.RequestException:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {process.stderr.read().decode()[-1000:]}")
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(10)
        process.stderr.close()
        shutil.rmtree(prefix, ignore_errors=True)


@pytest.fixture
def cluster(tmp_path, upstream, postgres):
    """Two instances on one PostgreSQL and one Redis, nginx in front: (nginx, instance A, instance B, app, users)."""
    required("nginx", "nginx", "GATEWAY_REQUIRE_NGINX")
    required("redis-server", "redis-server", "GATEWAY_REQUIRE_REDIS")
    database = create_database(postgres, "two_instances")
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[demo]
enabled = false
[retry]
max_attempts = 1
[circuit_breaker]
failure_threshold = 2
recovery_timeout = 60
distinct_callers = 1
[providers.openai]
type = "openai"
base_url = "{upstream.url}/v1"
api_keys = ["key-1", "key-2"]
[models.m1]
provider = "openai"
[models.failing]
provider = "openai"
[models.paid]
provider = "openai"
per_request = {PRICE}
""")
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "SQLALCHEMY_DATABASE_URI": database,
                      "GATEWAY_CONFIG": str(config), "GATEWAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
                      "HEALTH_STATE_FILE": ""})
    user_id = make_user(app)
    users = {"alice": ({"Authorization": f"Bearer {make_key(app, user_id)}"}, user_id)}
    with app.app_context():
        credit.grant(user_id, round(PAID_REQUESTS * PRICE * MICRO))
        db.session.commit()
        db.engine.dispose()
    with ExitStack() as stack:
        shared = stack.enter_context(redis_server())
        env = {"DATABASE_URL": database, "GATEWAY_CONFIG": str(config), "SECRET_KEY": "test",
               "GATEWAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY, "REDIS_URL": shared.url}
        instances = [stack.enter_context(gunicorn_server({**env, "GATEWAY_INSTANCE_PATH": str(tmp_path / name)}))
                     for name in ("instance-a", "instance-b")]
        front = stack.enter_context(nginx(instances))
        yield front, instances[0], instances[1], app, users
    with app.app_context():
        db.engine.dispose()


def ask(base, headers, model):
    return requests.post(base + CHAT, headers=headers, timeout=15,
                         json={"model": model, "messages": [{"role": "user", "content": "hi"}]})


def calls(upstream, **match):
    return sum(1 for r in upstream.requests if all(getattr(r, name) == value for name, value in match.items()))


def test_several_instances_act_as_one(cluster, upstream):
    front, a, b, app, users = cluster
    headers, user_id = users["alice"]

    # A breaker opened through instance A is skipped by instance B without an upstream call.
    upstream.script(Fault.status(503, "overloaded"), model="failing")
    while calls(upstream, model="failing") < 2:
        assert ask(a, headers, "failing").status_code in (502, 503)
    before = calls(upstream, model="failing")
    for _ in range(4):
        refused = ask(b, headers, "failing")
        assert refused.status_code == 503 and "circuit open" in refused.json()["error"]["message"]
    assert calls(upstream, model="failing") == before

    # A key cooled down by a 429 through instance A is not tried through B (nor nginx) before Retry-After.
    upstream.script(Fault.status(429, "slow down", retry_after=30), key="key-1", model="m1")
    assert ask(a, headers, "m1").status_code == 200                      # key-1 429, then key-2
    for base in (b, front, front, b, front):
        assert ask(base, headers, "m1").status_code == 200
    assert calls(upstream, model="m1", key="key-1") == 1

    # One rate limit holds across both instances: a key of rpm 4 gets 4 answers in all, not 4 per instance.
    limited = {"Authorization": f"Bearer {make_key(app, user_id, 'limited', rpm=4)}"}
    before = calls(upstream, model="m1", key="key-2")
    answers = [ask(base, limited, "m1") for base in (a, b, front, a, b, front, front)]
    assert [r.status_code for r in answers] == [200] * 4 + [429] * 3
    assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["3", "2", "1", "0", "0", "0", "0"]
    assert all(int(r.headers["Retry-After"]) >= 1 for r in answers[4:])
    assert calls(upstream, model="m1", key="key-2") == before + 4            # the refused ones went nowhere
    assert {requests.get(base + "/health", timeout=5).json()["rate_limit_storage"] for base in (a, b)} == {"redis"}

    # Credits under a barrier of concurrent requests through both instances never overspend.
    upstream.script(Fault.slow(0.3), model="paid")
    barrier, statuses = threading.Barrier(CONCURRENT), []

    def one_paid_request(base):
        barrier.wait()
        statuses.append(ask(base, headers, "paid").status_code)

    threads = [threading.Thread(target=one_paid_request, args=((a, b, front, front)[i % 4],))
               for i in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [200] * PAID_REQUESTS + [402] * (CONCURRENT - PAID_REQUESTS)
    assert calls(upstream, model="paid") == PAID_REQUESTS
    with app.app_context():
        user = db.session.get(User, user_id)
        kinds = db.session.scalars(sa.select(CreditTransaction.kind).order_by(CreditTransaction.id)).all()
        ledger_sum = db.session.scalar(sa.select(sa.func.sum(CreditTransaction.amount)))
        assert (user.balance, user.reserved, ledger_sum) == (0, 0, 0)
        assert kinds == ["grant"] + ["charge"] * PAID_REQUESTS
        assert db.session.scalar(sa.text("SELECT count(*) FROM reservations WHERE status = 'held'")) == 0
