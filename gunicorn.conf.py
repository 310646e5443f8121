"""gunicorn settings: gevent workers so thousands of slow upstream streams cost greenlets, not threads."""
import multiprocessing
import os
import signal

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
