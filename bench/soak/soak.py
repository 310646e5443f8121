"""Soak test: N minutes of mixed, paid, partly failing traffic through gunicorn (2 gevent workers) on
PostgreSQL and Redis, sampling each worker's memory, descriptors, greenlets and database pool, then
checking that the money adds up.

    .venv/bin/python bench/soak/soak.py --minutes 10          # writes to a new /tmp/gw-soak-* folder

It starts everything it needs on 127.0.0.1 and stops it at the end: a throwaway PostgreSQL cluster
(tests/servers.py), a Redis, the fault-injecting fake upstream (bench/soak/upstream.py) and gunicorn
with the product's settings plus an in-worker probe (bench/soak/probe.conf.py). Load is paced
(`--rate` requests per second, at most `--concurrency` at once) so the soak finds leaks, not the
throughput ceiling, on a machine others share. Output in `--out`: samples.json (everything),
requests.csv (one row per client request), gunicorn.log, upstream.log and report.md (the table and
the verdicts; `python bench/soak/report.py OUT` renders it again).
"""
import argparse
import contextlib
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests"), HERE]

import psycopg  # noqa: E402
import requests  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402

import report  # noqa: E402
from servers import (free_port, postgres_server, redis_server, stop_group, wait_for_port, wait_until_up,  # noqa: E402
                     worker_pids)

MICRO = 1_000_000
PRICES = {"soak-a": (50.0, 150.0), "soak-b": (20.0, 60.0)}      # USD per million tokens: in, out
# What each client request is, by weight. Chat streams and non-streams dominate; the Anthropic
# route, streams the client hangs up on, and two cheap reads make up the rest.
MIX = {"chat": 40, "chat_stream": 30, "messages": 8, "messages_stream": 7, "abandon": 5, "models": 5, "balance": 5}
# The poor user runs dry after a couple of minutes and is topped up by less than it would spend each
# minute; the capped key runs out of quota after a minute or so: both then get 402s while others are served.
RICH_USD, POOR_USD, TOP_UP_USD, TOP_UP_EVERY_S, KEY_QUOTA_USD = 1000, 0.5, 0.1, 60, 0.5


def main():
    args = parse_args()
    out = args.out or tempfile.mkdtemp(prefix="gw-soak-")
    os.makedirs(out, exist_ok=True)
    args.out = out
    print(f"soak: {args.minutes} min at {args.rate} req/s, output in {out}", flush=True)
    with contextlib.ExitStack() as stack:
        database = stack.enter_context(postgres_server())
        redis_url = stack.enter_context(redis_server()).url if args.redis else None
        upstream_port = stack.enter_context(fake_upstream(out, args.fault_rate, args.seed))
        config = write_gateway_config(out, upstream_port)
        secrets = {"SECRET_KEY": "soak-only-secret", "GATEWAY_ENCRYPTION_KEYS": Fernet.generate_key().decode()}
        bank = Bank(database, config, secrets, out)
        clients = bank.open_accounts()
        env = {"DATABASE_URL": database, "GATEWAY_CONFIG": config, "GATEWAY_INSTANCE_PATH": bank.instance,
               "SOAK_PROBE_DIR": out, "SOAK_PROBE_S": str(args.sample_s), **secrets,
               **({"REDIS_URL": redis_url} if redis_url else {})}
        gunicorn, base = stack.enter_context(gunicorn_server(env, args.workers, out))
        ports = {"client": port_of(base), "postgres": port_of(database), "upstream": upstream_port,
                 "redis": port_of(redis_url) if redis_url else None}
        data = soak(args, base, database, clients, bank, ports)
        data["meta"].update(command=" ".join(["python", "bench/soak/soak.py"] + sys.argv[1:]), out=out,
                            database="PostgreSQL " + pg_version(database), redis=bool(redis_url))
    data["meta"]["gunicorn_stop_s"] = gunicorn.stop_seconds
    data["gunicorn_log"] = log_summary(os.path.join(out, "gunicorn.log"))
    write_outputs(out, data)
    print(f"soak: report in {os.path.join(out, 'report.md')}", flush=True)
    return 0 if all(v["ok"] for v in report.verdicts(data)) else 1


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10, help="how long the load runs (default 10)")
    parser.add_argument("--rate", type=float, default=30, help="client requests per second (default 30)")
    parser.add_argument("--concurrency", type=int, default=32, help="client requests in flight at most (default 32)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--fault-rate", type=float, default=0.04, help="share of upstream calls that fail (0.04)")
    parser.add_argument("--sample-s", type=float, default=15, help="seconds between samples (default 15)")
    parser.add_argument("--warmup-minutes", type=float, default=2, help="memory growth is measured from here (2)")
    parser.add_argument("--no-redis", dest="redis", action="store_false", help="run without REDIS_URL")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="output folder (default: a new /tmp/gw-soak-* folder)")
    return parser.parse_args()


# --- the servers -----------------------------------------------------------------------------------
@contextlib.contextmanager
def fake_upstream(out, fault_rate, seed):
    port = free_port()
    log = open(os.path.join(out, "upstream.log"), "w")
    process = subprocess.Popen([sys.executable, os.path.join(HERE, "upstream.py"), str(port), str(fault_rate),
                                str(seed)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, process, "the fake upstream (see upstream.log)")
        yield port
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def write_gateway_config(out, upstream_port):
    """Two priced models in one fallback group on the fake upstream, three operator keys."""
    path = os.path.join(out, "gateway.toml")
    models = "".join(f'[models."{name}"]\nprovider = "fake"\ninput_per_mtok = {p_in}\noutput_per_mtok = {p_out}\n\n'
                     for name, (p_in, p_out) in PRICES.items())
    with open(path, "w") as fh:
        fh.write(f"""# Written by bench/soak/soak.py for one soak run.
[routing]
request_timeout_s = 30

[retry]
base_delay = 0.2
max_delay = 2.0

[demo]
enabled = false

[limits]                 # on the path of every request, but far above the soak's rate: it must never refuse
user_per_minute = 1000000
global_per_hour = 100000000

[providers.fake]
type = "openai"
base_url = "http://127.0.0.1:{upstream_port}/v1"
api_keys = ["sk-soak-1", "sk-soak-2", "sk-soak-3"]

{models}[groups]
main = {json.dumps(list(PRICES))}
""")
    return path


class GunicornProcess:
    def __init__(self, process):
        self.process, self.stop_seconds = process, None


@contextlib.contextmanager
def gunicorn_server(env, workers, out):
    """The product's gunicorn settings plus the probe; stopped with SIGTERM as systemd would."""
    port = free_port()
    log = open(os.path.join(out, "gunicorn.log"), "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", os.path.join(HERE, "probe.conf.py"), "-b", f"127.0.0.1:{port}",
         "wsgi:app"], cwd=ROOT, env={**os.environ, **env, "GATEWAY_WORKERS": str(workers)},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = GunicornProcess(process)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, None, timeout=60)
        deadline = time.monotonic() + 30
        while len(worker_pids(base)) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        yield server, base
    finally:
        started = time.monotonic()
        stop_group(process, grace=30)
        server.stop_seconds = round(time.monotonic() - started, 2)
        log.close()


def port_of(url):
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def pg_version(database):
    with psycopg.connect(plain(database)) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def plain(url):
    return url.replace("postgresql+psycopg", "postgresql")


# --- users, keys and credit, through the app's own models ------------------------------------------
class Bank:
    """Opens the soak's accounts and tops up the poor one during the run, as an admin would."""

    def __init__(self, database, config, secrets, out):
        self.instance = os.path.join(out, "instance")
        os.environ["GATEWAY_INSTANCE_PATH"] = self.instance
        from app import create_app

        self.app = create_app({"SQLALCHEMY_DATABASE_URI": database, "GATEWAY_CONFIG": config, **secrets})
        self.poor_id, self.top_ups = None, 0

    def open_accounts(self):
        """Four users with plenty of credit (one also has a key capped at a small quota), one with
        little: a client is a (user, key) pair; returns them as dicts."""
        from extensions import db
        from models import ApiKey, User, credit

        clients = []
        with self.app.app_context():
            for name, usd in [("soak-1", RICH_USD), ("soak-2", RICH_USD), ("soak-3", RICH_USD),
                              ("soak-4", RICH_USD), ("soak-poor", POOR_USD)]:
                user = User(username=name, role="user")
                user.set_password("soak-password")
                db.session.add(user)
                db.session.flush()
                credit.grant(user.id, round(usd * MICRO), description="soak: opening credit")
                keys = [("main", None)] + ([("capped", KEY_QUOTA_USD)] if name == "soak-4" else [])
                for key_name, quota in keys:
                    row, raw = ApiKey.issue(user, key_name)
                    if quota is not None:
                        row.unlimited_quota, row.remain_quota = False, round(quota * MICRO)
                    clients.append({"user": name, "key_name": key_name, "key": raw})
                if name == "soak-poor":
                    self.poor_id = user.id
                db.session.commit()
            db.engine.dispose()
        return clients

    def top_up(self):
        from extensions import db
        from models import credit

        with self.app.app_context():
            credit.grant(self.poor_id, round(TOP_UP_USD * MICRO), description="soak: top-up during load")
            db.session.commit()
            self.top_ups += 1
            db.engine.dispose()


# --- the load --------------------------------------------------------------------------------------
class Load:
    """`concurrency` threads taking paced slots; every client request becomes one record."""

    def __init__(self, base, clients, rate, concurrency, seed):
        self.base, self.clients, self.rate = base, clients, rate
        self.records, self.lock, self.stop = [], threading.Lock(), threading.Event()
        self.slot, self.t0 = 0, None
        self.threads = [threading.Thread(target=self._run, args=(random.Random(seed * 1000 + i),), daemon=True)
                        for i in range(concurrency)]
        self.kinds, self.weights = zip(*MIX.items())

    def start(self, t0):
        self.t0 = t0
        for thread in self.threads:
            thread.start()

    def finish(self, timeout=90):
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        return sum(thread.is_alive() for thread in self.threads)

    def _next_slot(self):
        with self.lock:
            now = time.monotonic()
            if self.t0 + self.slot / self.rate < now - 1:      # fallen behind: skip, do not burst
                self.slot = int((now - self.t0) * self.rate)
            self.slot += 1
            return self.t0 + self.slot / self.rate, self.slot

    def _run(self, rng):
        session = requests.Session()
        while not self.stop.is_set():
            at, number = self._next_slot()
            if self.stop.wait(max(0.0, at - time.monotonic())):
                break
            kind = rng.choices(self.kinds, self.weights)[0]
            client = rng.choice(self.clients)
            model = "soak-a" if rng.random() < 0.7 else "soak-b"
            record = {"start": round(time.monotonic() - self.t0, 3), "kind": kind, "user": client["user"],
                      "key": client["key_name"], "model": model, "status": None, "outcome": "", "request_id": "",
                      "charged_micro": "", "ms": 0.0, "error": ""}
            started = time.perf_counter()
            try:
                one_request(session, self.base, kind, client["key"], model, number, record)
            except requests.RequestException as exc:
                record["status"], record["outcome"] = "exc", type(exc).__name__
                session.close()
                session = requests.Session()
            record["ms"] = round((time.perf_counter() - started) * 1000, 1)
            record["end"] = round(time.monotonic() - self.t0, 3)
            with self.lock:
                self.records.append(record)
        session.close()             # its kept-alive connection ends now, not when the worker's keep-alive runs out


def one_request(session, base, kind, key, model, number, record):
    headers = {"Authorization": f"Bearer {key}"}
    prompt = [{"role": "user", "content": f"soak request {number}: tell me something short"}]
    if kind == "models":
        response = session.get(base + "/v1/models", headers=headers, timeout=(5, 60))
    elif kind == "balance":
        response = session.get(base + "/billing/balance", headers=headers, timeout=(5, 60))
    elif kind.startswith("messages"):
        body = {"model": model, "max_tokens": 32, "messages": prompt, "stream": kind == "messages_stream"}
        response = session.post(base + "/v1/messages", json=body, headers=headers, timeout=(5, 60),
                                stream=body["stream"])
    else:
        body = {"model": model, "max_tokens": 32, "messages": prompt, "stream": kind != "chat"}
        response = session.post(base + "/v1/chat/completions", json=body, headers=headers, timeout=(5, 60),
                                stream=body["stream"])
    record["status"] = response.status_code
    record["request_id"] = response.headers.get("X-Request-ID", "")
    if "X-Credits-Charged" in response.headers:
        record["charged_micro"] = round(float(response.headers["X-Credits-Charged"]) * MICRO)
    with response:
        if response.status_code != 200:
            record["outcome"] = "refused" if response.status_code < 500 else "error"
            if response.status_code >= 500:
                record["error"] = response.text[:300]
        elif kind == "abandon":
            for line in response.iter_lines(chunk_size=None):
                if line.startswith(b"data: "):
                    break
            record["outcome"] = "abandoned"            # the context manager closes the connection mid-stream
        elif kind in ("chat_stream", "messages_stream"):
            record["outcome"] = read_stream(response)
        else:
            response.content
            record["outcome"] = "ok"


def read_stream(response):
    """done: the stream's proper end arrived; truncated: it ended with an error event or without an end."""
    done = (b"data: [DONE]", b"event: message_stop")
    errors = (b'data: {"error"', b"event: error")
    outcome = "truncated"
    for line in response.iter_lines(chunk_size=None):
        if line.startswith(done):
            outcome = "done"
        elif line.startswith(errors):
            return "truncated"
    return outcome


# --- the run ---------------------------------------------------------------------------------------
def soak(args, base, database, clients, bank, ports):
    load = Load(base, clients, args.rate, args.concurrency, args.seed)
    data = {"meta": {"started_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "minutes": args.minutes,
                     "rate": args.rate, "concurrency": args.concurrency, "workers": args.workers,
                     "fault_rate": args.fault_rate, "sample_s": args.sample_s,
                     "warmup_minutes": min(args.warmup_minutes, args.minutes / 2), "cores": os.cpu_count(),
                     "mix": MIX, "prices_per_mtok": PRICES, "clients": [[c["user"], c["key_name"]] for c in clients]},
            "samples": []}
    sampler = Sampler(base, database, load, args.out, ports)
    time.sleep(args.sample_s + 1)                         # let every worker's probe write once
    t0 = time.monotonic()
    data["samples"].append(sampler.take(t0, "idle, before load"))
    load.start(t0)
    deadline, next_sample, next_top_up = t0 + args.minutes * 60, t0 + args.sample_s, t0 + TOP_UP_EVERY_S
    while time.monotonic() < deadline:
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        now = time.monotonic()
        if now >= next_top_up:
            bank.top_up()
            next_top_up += TOP_UP_EVERY_S
        if now >= next_sample or now >= deadline:
            data["samples"].append(sampler.take(t0, "load"))
            print(report.progress_line(data["samples"][-1]), flush=True)
            next_sample += args.sample_s
    still_running = load.finish()
    drained_s = wait_for_drain(database)
    time.sleep(args.sample_s + 1)                         # a fresh probe snapshot of the idle workers
    data["samples"].append(sampler.take(t0, "idle, after drain"))
    # Once more after the longest timeout a request can still be inside ([routing] request_timeout_s
    # = 30 s): what is alive then is not a request finishing late.
    time.sleep(max(0.0, 45 - args.sample_s))
    data["samples"].append(sampler.take(t0, "idle, 60 s after drain"))
    data["meta"].update(load_threads_stuck=still_running, drain_s=drained_s, top_ups=bank.top_ups)
    data["meta"]["code"] = code_version()
    data["records"] = load.records
    data["reconciliation"] = reconcile(database, load.records)
    return data


def code_version():
    """The commit under test, and whether the working tree differed from it (others edit it meanwhile)."""
    run = lambda *cmd: subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    changed = [line[3:] for line in run("status", "--porcelain").splitlines()]
    return {"commit": run("rev-parse", "--short", "HEAD"), "changed_files": changed}


def wait_for_drain(database, timeout=60):
    """Seconds until no reservation is held, or None if some still are after `timeout`."""
    started = time.monotonic()
    with psycopg.connect(plain(database), autocommit=True) as conn:
        while time.monotonic() - started < timeout:
            if conn.execute("SELECT count(*) FROM reservations WHERE status = 'held'").fetchone()[0] == 0:
                return round(time.monotonic() - started, 2)
            time.sleep(0.5)
    return None


class Sampler:
    """One row of the table: each worker from /proc and from its probe, PostgreSQL, and the load."""

    def __init__(self, base, database, load, data_dir, ports):
        self.base, self.database, self.load, self.data_dir, self.ports = base, database, load, data_dir, ports
        self.seen = 0

    def take(self, t0, phase):
        now = time.monotonic()
        workers, sockets = [], tcp_sockets()
        for pid in worker_pids(self.base):
            row = {"pid": pid, **proc_stats(pid), "fd_kinds": fd_kinds(pid, sockets, self.ports)}
            probe = read_probe(self.data_dir, pid)
            if probe:
                row.update({k: v for k, v in probe.items() if k != "pid"}, probe_age_s=round(time.time() - probe["time"], 1))
            workers.append(row)
        with self.load.lock:
            new = self.load.records[self.seen:]
            self.seen = len(self.load.records)
        return {"t": round(now - t0, 1), "phase": phase, "workers": workers, "postgres": postgres_stats(self.database),
                "machine": machine_stats(), "requests": report.summarize(new)}


def read_probe(data_dir, pid):
    """The worker's latest probe snapshot (probe.conf.py), or None before its first."""
    path = os.path.join(data_dir, f"worker-{pid}.json")
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def proc_stats(pid):
    """RSS and threads from /proc/<pid>/status, open descriptors, CPU seconds so far."""
    stats = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "Threads"):
                    stats["rss_kib" if name == "VmRSS" else "os_threads"] = int(value.split()[0])
        stats["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        stats["cpu_s"] = round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
    except OSError:
        stats["gone"] = True
    return stats


def tcp_sockets():
    """inode → (local port, remote port) of every TCP socket in this network namespace."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                next(fh)
                for line in fh:
                    fields = line.split()
                    found[fields[9]] = (int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return found


def fd_kinds(pid, sockets, ports):
    """A worker's descriptors by what they are: client connections, upstream, PostgreSQL, Redis, the rest."""
    kinds = dict.fromkeys(("client", "upstream", "postgres", "redis", "other"), 0)
    by_port = {port: kind for kind, port in ports.items() if port and kind != "client"}
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return kinds
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        local, remote = sockets.get(target[8:-1], (None, None)) if target.startswith("socket:[") else (None, None)
        if local == ports["client"] and remote:
            kinds["client"] += 1
        elif remote in by_port:
            kinds[by_port[remote]] += 1
        else:
            kinds["other"] += 1
    return kinds


def machine_stats():
    """Load average and CPU time of the whole machine so far (others' work included)."""
    with open("/proc/loadavg") as fh:
        load1 = float(fh.read().split()[0])
    with open("/proc/stat") as fh:
        cpu = [int(v) for v in fh.readline().split()[1:]]
    idle = cpu[3] + cpu[4]
    return {"load1": load1, "cpu_busy_s": round((sum(cpu) - idle) / os.sysconf("SC_CLK_TCK"), 2),
            "cpu_total_s": round(sum(cpu) / os.sysconf("SC_CLK_TCK"), 2)}


def postgres_stats(database):
    with psycopg.connect(plain(database), autocommit=True) as conn:
        row = conn.execute("SELECT count(*), count(*) FILTER (WHERE state = 'active'), "
                           "count(*) FILTER (WHERE state LIKE 'idle in transaction%') FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
        held = conn.execute("SELECT count(*) FROM reservations WHERE status = 'held'").fetchone()[0]
    return {"connections": row[0], "active": row[1], "idle_in_transaction": row[2], "held_reservations": held}


# --- the money -------------------------------------------------------------------------------------
def reconcile(database, records):
    """Every check reads the database directly (plain SQL), independent of the app's models."""
    with psycopg.connect(plain(database), autocommit=True) as conn:
        q = lambda sql, *params: conn.execute(sql, params).fetchall()  # noqa: E731
        users = q("SELECT u.username, u.balance, u.reserved, coalesce(sum(t.amount), 0), "
                  "count(t.id) FILTER (WHERE t.kind = 'charge'), count(t.id) FILTER (WHERE t.kind = 'grant') "
                  "FROM users u LEFT JOIN credit_transactions t ON t.user_id = u.id GROUP BY u.id ORDER BY u.username")
        keys = q("SELECT u.username, k.name, k.unlimited_quota, k.remain_quota, k.used_quota, k.reserved_quota "
                 "FROM api_keys k JOIN users u ON u.id = k.user_id ORDER BY u.username, k.name")
        held = q("SELECT count(*), coalesce(sum(amount), 0) FROM reservations WHERE status = 'held'")[0]
        reservations = dict(q("SELECT status, count(*) FROM reservations GROUP BY status"))
        charge_ids = q("SELECT count(*), count(DISTINCT request_id), count(*) FILTER (WHERE request_id IS NULL) "
                       "FROM credit_transactions WHERE kind = 'charge'")[0]
        orphans = q("SELECT count(*) FROM credit_transactions t WHERE t.kind = 'charge' AND NOT EXISTS "
                    "(SELECT 1 FROM request_logs r WHERE r.request_id = t.request_id)")[0][0]
        by_log = q("SELECT r.endpoint, r.stream, r.status, count(*), count(t.id), coalesce(sum(-t.amount), 0), "
                   "count(*) FILTER (WHERE t.id IS NULL AND r.completion_tokens > 0) "
                   "FROM request_logs r LEFT JOIN credit_transactions t "
                   "ON t.request_id = r.request_id AND t.kind = 'charge' "
                   "GROUP BY r.endpoint, r.stream, r.status ORDER BY 1, 2, 3")
        charges = dict(q("SELECT request_id, -amount FROM credit_transactions WHERE kind = 'charge'"))
        log_count = q("SELECT count(*) FROM request_logs")[0][0]
        overrun = q("SELECT coalesce(sum(overrun), 0) FROM request_logs")[0][0]
    # The client's view: a non-stream answer says what it cost (X-Credits-Charged); the ledger must
    # hold exactly that, once, under the request's id.
    paid = [r for r in records if r["status"] == 200 and r["charged_micro"] != "" and r["request_id"]]
    missing = [r["request_id"] for r in paid if r["charged_micro"] > 0 and r["request_id"] not in charges]
    different = [r["request_id"] for r in paid if r["request_id"] in charges and charges[r["request_id"]] !=
                 r["charged_micro"]]
    routed = sum(1 for r in records if r["kind"] not in ("models", "balance"))
    return {
        "users": [dict(zip(("user", "balance", "reserved", "ledger_sum", "charges", "grants"), row)) for row in users],
        "keys": [dict(zip(("user", "key", "unlimited", "remain_quota", "used_quota", "reserved_quota"), row))
                 for row in keys],
        "held_reservations": held[0], "held_amount": held[1], "reservations_by_status": reservations,
        "charge_rows": charge_ids[0], "charge_request_ids_distinct": charge_ids[1], "charges_without_request_id":
            charge_ids[2], "charges_without_request_log": orphans,
        "by_request_log": [dict(zip(("endpoint", "stream", "status", "rows", "charged", "charged_micro",
                                     "served_uncharged"), row)) for row in by_log],
        "client_paid_answers": len(paid), "client_paid_missing_in_ledger": len(missing),
        "client_paid_amount_differs": len(different), "client_paid_sum_micro": sum(r["charged_micro"] for r in paid),
        "ledger_sum_for_client_paid_micro": sum(charges.get(r["request_id"], 0) for r in paid),
        "request_log_rows": log_count, "client_routed_requests": routed, "overrun_micro": overrun,
        "examples": {"missing": missing[:5], "different": different[:5]},
    }


def log_summary(path):
    counts = {"lines": 0, "tracebacks": 0, "worker_timeouts": 0, "worker_boots": 0, "errors": 0}
    examples = []
    with open(path, errors="replace") as fh:
        for line in fh:
            counts["lines"] += 1
            if line.startswith("Traceback"):
                counts["tracebacks"] += 1
            if "WORKER TIMEOUT" in line:
                counts["worker_timeouts"] += 1
            if "Booting worker" in line:
                counts["worker_boots"] += 1
            if "[ERROR]" in line or " ERROR " in line:
                counts["errors"] += 1
                if len(examples) < 8:
                    examples.append(line.strip()[:300])
    return {**counts, "examples": examples}


def write_outputs(out, data):
    records = data.pop("records")
    with open(os.path.join(out, "requests.csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["start", "end", "kind", "user", "key", "model", "status", "outcome",
                                                "ms", "request_id", "charged_micro", "error"])
        writer.writeheader()
        writer.writerows(records)
    data["totals"] = report.summarize(records)
    with open(os.path.join(out, "samples.json"), "w") as fh:
        json.dump(data, fh, indent=1, default=str)
    with open(os.path.join(out, "report.md"), "w") as fh:
        fh.write(report.render(data))


if __name__ == "__main__":
    sys.exit(main())
