"""gunicorn settings: gevent workers so thousands of slow upstream streams cost greenlets, not threads."""
import glob
import multiprocessing
import os
import shutil
import signal
import tempfile

bind = os.environ.get("GATEWAY_BIND", "127.0.0.1:8000")
worker_class = "gevent"
workers = int(os.environ.get("GATEWAY_WORKERS", min(4, multiprocessing.cpu_count())))
worker_connections = 1000
timeout = 60            # a greenlet that never yields for this long is a bug; streams yield
graceful_timeout = 20
keepalive = 5
accesslog = os.environ.get("GATEWAY_ACCESS_LOG")   # off by default: the request log lives in the database
preload_app = False     # each worker patches and builds its own app (gevent must patch first)
control_socket_disable = True   # gunicorn ≥ 27: no shared ~/.gunicorn/gunicorn.ctl between instances

_own_metrics_directory = []     # the temporary one on_starting made, removed on exit


def on_starting(server):
    """Give the workers one empty directory for their Prometheus series (gateway/metrics.py).

    Set here, in the master, before any worker forks or imports prometheus_client: an operator's
    PROMETHEUS_MULTIPROC_DIR is emptied of the last run's files, else a fresh temporary one is made.
    """
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
    else:
        path = tempfile.mkdtemp(prefix="gateway-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        _own_metrics_directory.append(path)


def child_exit(server, worker):
    """A dead worker's live gauges go (prometheus_client's multiprocess rule); its counters stay in the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the temporary series directory, if on_starting made one."""
    for path in _own_metrics_directory:
        shutil.rmtree(path, ignore_errors=True)


def post_worker_init(worker):
    """On SIGTERM (gunicorn's graceful stop) /ready turns 503 at once, while in-flight requests finish.

    The worker's own SIGTERM handler only flags the worker to stop; this one flags the app first,
    then hands over to it. Installed here because the worker sets its handlers just before loading the app.
    """
    from blueprints.health import start_draining     # here, not at the top: the master never imports the app

    stop = signal.getsignal(signal.SIGTERM)

    def drain(signum, frame):
        start_draining(worker.wsgi)
        stop(signum, frame)

    signal.signal(signal.SIGTERM, drain)
