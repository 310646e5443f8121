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
    """A throwaway PostgreSQL cluster on a free 127.0.0.1 port; yields its SQLAlchemy URL.

    PostgreSQL refuses to run as root, so under root the cluster belongs to the `postgres` user.
    """
    bin_dir = postgres_bin()
    data = tempfile.mkdtemp(prefix="gw-pg-")
    as_user = []
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    run = lambda *cmd: subprocess.run(as_user + list(cmd), check=True, capture_output=True)  # noqa: E731
    run(f"{bin_dir}/initdb", "-D", data, "-U", "gateway", "--auth=trust", "-E", "UTF8")
    run(f"{bin_dir}/pg_ctl", "-D", data, "-w", "-l", f"{data}/server.log", "-o",
        f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", "start")
    try:
        yield f"postgresql+psycopg://gateway@127.0.0.1:{port}/postgres"
    finally:
        run(f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(data, ignore_errors=True)


def create_database(postgres_url, name):
    """A new empty database on the test server; returns its SQLAlchemy URL."""
    import psycopg

    with psycopg.connect(postgres_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_url.rsplit("/", 1)[0] + "/" + name


@contextmanager
def gunicorn_server(env, workers=2):
    """The gateway as production runs it: gunicorn with gevent workers on a free port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=ROOT, env={**os.environ, **env, "GATEWAY_WORKERS": str(workers)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process)
        yield base
    finally:
        _stop(process)


def _stop(process):
    """SIGTERM the whole group; past gunicorn's graceful timeout, SIGKILL it.

    A worker forked an instant before the SIGTERM can miss it (it arrives before the worker
    installs its handlers), and gunicorn then waits out `graceful_timeout` for it.
    """
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(25)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    process.stderr.close()


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


def wait_until_up(base, process=None, timeout=30):
    """Return once the gateway at `base` answers; fail if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {process.stderr.read().decode()[-2000:]}")
        try:
            requests.get(base + "/v1/models", timeout=5)
            return
        except requests.RequestException:      # not listening yet, or a worker still booting
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start")
