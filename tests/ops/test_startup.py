"""Start races: many gunicorn workers booting together on a fresh database all come up.

Before migrations, two workers' `create_all` on a fresh SQLite file could both decide to create
a table ("table users already exists") and the worker that lost took gunicorn down with it.
"""
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from conftest import TEST_ENCRYPTION_KEY
from servers import ROOT, create_database, free_port

STARTS = 10
WORKERS = 4

# gunicorn.conf.py as production runs it, plus one line in the log per worker that has built its app.
TEST_CONFIG = f"""
import runpy
globals().update({{name: value for name, value in runpy.run_path({os.path.join(ROOT, "gunicorn.conf.py")!r}).items()
                  if not name.startswith("__")}})

def post_worker_init(worker):
    worker.log.info("worker ready: %s", worker.pid)
"""


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_fresh_starts_with_four_workers_all_come_up(request, kind, tmp_path):
    postgres = request.getfixturevalue("postgres") if kind == "postgresql" else None
    config = tmp_path / "gunicorn.test.conf.py"
    config.write_text(TEST_CONFIG)
    for start in range(STARTS):
        instance = tmp_path / f"instance-{start}"
        env = {"GATEWAY_INSTANCE_PATH": str(instance), "GATEWAY_WORKERS": str(WORKERS),
               "GATEWAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY, "SECRET_KEY": "test-secret"}
        if postgres:
            env["DATABASE_URL"] = create_database(postgres, f"startup_{start}")
        log = boot(config, env, tmp_path / f"gunicorn-{start}.log")
        assert "Worker failed to boot" not in log and "Traceback" not in log, log
        assert log.count("worker ready:") == WORKERS, log
        if kind == "sqlite":
            files = [name for name in os.listdir(instance) if name.startswith("gateway.sqlite")]
            assert "gateway.sqlite" in files
            assert {name: os.stat(instance / name).st_mode & 0o777 for name in files} == {name: 0o600 for name in files}


def boot(config, env, log_path):
    """Start gunicorn, wait for every worker to build its app and for the API to answer; stop; return the log."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(config), "-b", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, f"gunicorn exited:\n{log_path.read_text()}"
            if log_path.read_text().count("worker ready:") == WORKERS and answers_401(base):
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"gunicorn did not come up with {WORKERS} workers:\n{log_path.read_text()}")
    finally:
        stop(process)
    return log_path.read_text()


def answers_401(base):
    try:
        return requests.get(base + "/v1/models", timeout=5).status_code == 401
    except requests.RequestException:
        return False


def stop(process):
    """SIGKILL the group: this test is about starting, and a graceful stop costs 1–2 s of each start."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
