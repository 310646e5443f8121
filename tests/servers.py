"""Real servers for tests that need them: a private PostgreSQL cluster and the gateway under gunicorn."""
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin():
    """Debian's server binaries (apt-get install postgresql), or None when not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


@contextmanager
def postgres_server():
    """A throwaway PostgreSQL cluster on a free 127.0.0.1 port; yields its SQLAlchemy URL."""
    with postgres_cluster() as cluster:
        yield cluster.url


def create_database(postgres_url, name, template=None):
    """A new database on the test server, empty or a copy of `template`; returns its SQLAlchemy URL."""
    _admin(postgres_url, f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    return postgres_url.rsplit("/", 1)[0] + "/" + name


def drop_database(postgres_url, name):
    """Drop a test database, ending any connection still open on it."""
    _admin(postgres_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _admin(postgres_url, statement):
    import psycopg

    with psycopg.connect(postgres_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(statement)


@contextmanager
def gunicorn_server(env, workers=2):
    """The gateway as production runs it: gunicorn with gevent workers on a free port.

    Its log goes to a file (a pipe nobody reads would block a chatty server once full), whose end
    is printed when the server stops: pytest shows it for a failed test only.
    """
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=ROOT, env={**os.environ, **env, "GATEWAY_WORKERS": str(workers)},
            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(base, process, log)
            yield base
        finally:
            stop_group(process)
            print("gunicorn's log, its end:\n" + _tail(log))


def stop_group(process, grace=25):
    """SIGTERM the whole group; past gunicorn's graceful timeout (`grace` s), SIGKILL it.

    A worker forked an instant before the SIGTERM can miss it (it arrives before the worker
    installs its handlers), and gunicorn then waits out `graceful_timeout` for it.
    """
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _tail(log, size=6000):
    log.seek(0)
    return log.read()[-size:].decode(errors="replace")


def worker_pids(base):
    """The gunicorn workers serving `base`: forked children share the master's command line."""
    bind = base.split("//", 1)[1]
    pids = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                command = fh.read()
        except OSError:
            continue
        if bind.encode() in command and b"gunicorn" in command:
            pids.add(int(entry))
    return sorted(pid for pid in pids if _parent(pid) in pids)


def _parent(pid):
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def wait_until_up(base, process=None, log=None, timeout=30):
    """Return once the gateway at `base` answers; fail if it exits (saying what its `log` ends with)
    or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {_tail(log, 2000) if log else ''}")
        try:
            requests.get(base + "/v1/models", timeout=5)
            return
        except requests.RequestException:      # not listening yet, or a worker still booting
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start")


def wait_for_port(port, process, what, timeout=10):
    """Return once something accepts connections on 127.0.0.1:`port`; fail if `process` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.02)


class RedisProcess:
    """A running test Redis: where it listens, and its process."""

    def __init__(self, port, process):
        self.port, self.process = port, process
        self.url = f"redis://127.0.0.1:{port}/0"


@contextmanager
def redis_server(port=None):
    """A throwaway Redis (Debian's redis-server) on a free or given 127.0.0.1 port, saving nothing.

    Yields a RedisProcess; killing `.process` mid-test is how tests lose Redis.
    """
    port = port or free_port()
    data = tempfile.mkdtemp(prefix="gw-redis-")
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, process, "redis-server")
        yield RedisProcess(port, process)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        shutil.rmtree(data, ignore_errors=True)


class PostgresCluster:
    """A test PostgreSQL cluster that can be stopped and started again on the same data and port,
    as a database server lost and back would be.

    PostgreSQL refuses to run as root, so under root the cluster belongs to the `postgres` user.
    """

    def __init__(self):
        self.bin_dir, self.port = postgres_bin(), free_port()
        self.data = tempfile.mkdtemp(prefix="gw-pg-")
        self.as_user = []
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgresql+psycopg://gateway@127.0.0.1:{self.port}/postgres"
        self._run("initdb", "-D", self.data, "-U", "gateway", "--auth=trust", "-E", "UTF8")

    def start(self):
        self._run("pg_ctl", "-D", self.data, "-w", "-l", f"{self.data}/server.log", "-o",
                  f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                  "start")

    def stop(self, check=True):
        """Gone at once, its clients' connections cut, as in a crash (`check=False`: if it still runs)."""
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "stop", check=check)

    def _run(self, program, *args, check=True):
        subprocess.run(self.as_user + [f"{self.bin_dir}/{program}", *args], check=check, capture_output=True)


@contextmanager
def postgres_cluster():
    """A started PostgresCluster, stopped and deleted at the end (whether stopped meanwhile or not)."""
    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop(check=False)
        shutil.rmtree(cluster.data, ignore_errors=True)
