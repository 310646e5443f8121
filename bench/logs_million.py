"""How the request-log pages and APIs answer at a million rows (SPEC 8, issue 12 item 6).

    python bench/logs_million.py [--database-url postgresql://…] [--rows 1000000] [--runs 5]

Fills `request_logs` with `--rows` rows over 60 days (200 users, 3 keys each, 20 models, a few
percent of errors), then times each page and API call through the app (the Flask test client:
routing, the queries and the rendering, without a network) and prints a Markdown table of the
median and the slowest run. Without `--database-url` it works on a SQLite file in a temp folder.
"""
import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import sqlalchemy as sa  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402

from app import create_app  # noqa: E402
from extensions import db  # noqa: E402
from gateway import config as gateway_config  # noqa: E402
from models import ApiKey, RequestLog, User, retention  # noqa: E402
from models.user import utcnow  # noqa: E402

USERS, KEYS_PER_USER, MODELS, DAYS, CHUNK = 200, 3, 20, 60, 20_000
PASSWORD = "bench-password-1"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def build_app(database_url):
    settings = gateway_config.parse({"limits": {"user_per_minute": 0, "global_per_hour": 0, "ip_per_minute": 0}}, {})
    return create_app({"SQLALCHEMY_DATABASE_URI": database_url, "GATEWAY_SETTINGS": settings, "TESTING": True,
                       "SECRET_KEY": "bench", "GATEWAY_ENCRYPTION_KEYS": Fernet.generate_key().decode()})


def fill(app, rows):
    """Users (user0 is the admin), their keys, and `rows` log rows; returns the raw first keys of user0 and user1."""
    rng = random.Random(7)
    with app.app_context():
        users = []
        for i in range(USERS):
            user = User(username=f"user{i}", role="admin" if i == 0 else "user")
            user.password_hash = users[0].password_hash if users else None
            if not users:
                user.set_password(PASSWORD)
            db.session.add(user)
            users.append(user)
        db.session.flush()
        keys, raw_keys = [], {}
        for user in users:
            for k in range(KEYS_PER_USER):
                row, raw = ApiKey.issue(user, f"key{k}")
                keys.append(row)
                raw_keys.setdefault(user.username, raw)
        db.session.commit()
        key_owner = [(key.id, key.user_id) for key in keys]
        now, span = utcnow(), DAYS * 86400
        insert = RequestLog.__table__.insert()
        for start in range(0, rows, CHUNK):
            batch = []
            for n in range(start, min(rows, start + CHUNK)):
                key_id, user_id = key_owner[rng.randrange(len(key_owner))]
                status = rng.choices((200, 429, 502, 503), (95, 2, 2, 1))[0]
                model = f"model-{rng.randrange(MODELS)}"
                prompt, completion = rng.randrange(10, 4000), rng.randrange(0, 800) if status == 200 else 0
                batch.append({"request_id": f"bench{n}", "user_id": user_id, "api_key_id": key_id, "endpoint": "chat",
                              "requested_model": model, "model": model if status == 200 else None,
                              "provider": "bench", "stream": n % 3 == 0, "status": status,
                              "error": None if status == 200 else "bench error", "attempts": [],
                              "prompt_tokens": prompt, "completion_tokens": completion,
                              "latency_ms": rng.uniform(200, 4000), "overrun": 0, "cost": prompt + 4 * completion,
                              "cache_read_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0,
                              "cost_parts": None, "created_at": now - timedelta(seconds=rng.randrange(span))})
            db.session.execute(insert, batch)
            db.session.commit()
        if db.engine.dialect.name == "postgresql":
            db.session.execute(sa.text("ANALYZE request_logs"))
        else:
            db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
    return raw_keys["user0"], raw_keys["user1"]


def signed_in(app, username):
    client = app.test_client()
    token = _TOKEN.search(client.get("/login").get_data(as_text=True)).group(1)
    response = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert response.status_code in (302, 303), response.status_code
    return client


def timed(call, runs):
    """Milliseconds of each run (after one warm-up), and the last answer."""
    response = call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = call()
        times.append((time.perf_counter() - started) * 1000)
    return times, response


def cases(app, admin_key, user_key):
    """(what, client, path, headers): every filter of the log pages and APIs, as a user and as an admin."""
    admin, user = signed_in(app, "user0"), signed_in(app, "user1")
    bearer, admin_bearer = {"Authorization": f"Bearer {user_key}"}, {"Authorization": f"Bearer {admin_key}"}
    day = 86400
    now = int(time.time())
    today = time.strftime("%Y-%m-%d", time.gmtime())
    with app.app_context():
        user7 = db.session.scalar(sa.select(User.id).where(User.username == "user7"))
    return [
        ("GET /api/logs (own, first page)", user, "/api/logs?p=1&page_size=50", bearer),
        ("GET /api/logs model_name", user, "/api/logs?model_name=model-3&page_size=50", bearer),
        ("GET /api/logs token_name", user, "/api/logs?token_name=key1&page_size=50", bearer),
        ("GET /api/logs last 24 h", user, f"/api/logs?start_timestamp={now - day}&end_timestamp={now}", bearer),
        ("GET /api/logs page 20", user, "/api/logs?p=20&page_size=50", bearer),
        ("GET /api/logs (admin, all users)", user, "/api/logs?p=1&page_size=50", admin_bearer),
        ("GET /api/logs (admin, username)", user, "/api/logs?username=user7&page_size=50", admin_bearer),
        ("GET /api/models/catalog (uptime, latency)", user, "/api/models/catalog", bearer),
        ("/usage (30 days)", user, "/usage", {}),
        ("/usage.csv", user, "/usage.csv", {}),
        ("/admin/requests (all)", admin, "/admin/requests", {}),
        ("/admin/requests model", admin, "/admin/requests?model=model-3", {}),
        ("/admin/requests status 502", admin, "/admin/requests?status=502", {}),
        ("/admin/requests user", admin, "/admin/requests?user=user7", {}),
        ("/admin/requests today", admin, f"/admin/requests?since={today}", {}),
        ("/admin/requests user + model", admin, "/admin/requests?user=user7&model=model-3", {}),
        ("/usage of a user (admin)", admin, f"/usage?user={user7}", {}),
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="logs-million-")
    app = build_app(args.database_url or f"sqlite:///{folder}/gateway.sqlite")
    started = time.perf_counter()
    keys = fill(app, args.rows)
    with app.app_context():
        dialect = db.engine.dialect.name
    print(f"filled {args.rows:,} rows on {dialect} in {time.perf_counter() - started:.0f} s\n")
    print("| page or call | status | median ms | slowest ms |\n|---|---|---|---|")
    for what, client, path, headers in cases(app, *keys):
        times, response = timed(lambda: client.get(path, headers=headers), args.runs)
        print(f"| {what} | {response.status_code} | {statistics.median(times):.1f} | {max(times):.1f} |")
    with app.app_context():
        settings = gateway_config.RetentionSettings(request_logs_days=30)
        times, counts = timed(lambda: retention.count(settings), 1)
        print(f"| count rows past 30 days ({counts['request_logs']:,}) | | {times[0]:.1f} | |")
        started = time.perf_counter()
        deleted = retention.prune(settings)["request_logs"]
        print(f"| prune them, 5,000 per transaction ({deleted:,}) | | {(time.perf_counter() - started) * 1000:.0f} | |")


if __name__ == "__main__":
    main()
