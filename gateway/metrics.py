"""Prometheus series for the whole gateway, summed over every gunicorn worker (SPEC 2.6).

Under gunicorn, gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR in the master before any worker
forks, and the master never imports the app: so by the time a worker imports this module (and
prometheus_client with it, which picks its value store once, at import) the variable is set, and
each worker writes its series to its own files there, which a scrape of any worker adds up.
Without it (the Flask test client, `flask run`) the series live in this process's memory.
"""
import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ      # the same test prometheus_client made on import
CONTENT_TYPE = CONTENT_TYPE_LATEST

# An LLM answer takes from a fraction of a second to minutes (a long stream); the gateway's own
# share should stay in milliseconds.
REQUEST_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
OVERHEAD_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

_SERIES = None if MULTIPROCESS else CollectorRegistry()       # multiprocess: the files are the registry

REQUESTS = Counter("llm_requests", "Routed requests, by the catalog model that answered (else the one "
                   "requested) and the HTTP status.", ("model", "status"), registry=_SERIES)
DURATION = Histogram("llm_requests_duration_seconds", "Whole routed requests, a stream to its last chunk.",
                     ("model",), buckets=REQUEST_BUCKETS, registry=_SERIES)
UPSTREAM = Histogram("llm_upstream_duration_seconds", "Time spent in upstream attempts (and relaying a "
                     "committed stream) per request.", ("model",), buckets=REQUEST_BUCKETS, registry=_SERIES)
OVERHEAD = Histogram("llm_gateway_overhead_seconds", "The gateway's own time per request: the whole request "
                     "less its upstream time.", buckets=OVERHEAD_BUCKETS, registry=_SERIES)
RATE_LIMITED = Counter("rate_limit_requests", "Requests refused by a rate limit, by the limit's type.",
                       ("type",), registry=_SERIES)


def observe_request(model, status, seconds, upstream_seconds):
    """Count one routed request and split its time into upstream and the gateway's own."""
    REQUESTS.labels(model, str(status)).inc()
    DURATION.labels(model).observe(seconds)
    UPSTREAM.labels(model).observe(upstream_seconds)
    OVERHEAD.observe(max(0.0, seconds - upstream_seconds))


def record_rate_limited(kind):
    """Count one request a rate limit refused; `kind` names the limit (e.g. "key", "user", "global", "ip")."""
    RATE_LIMITED.labels(kind).inc()


class UserBalances:
    """user_balance{user}: each user's balance in credits, read when scraped.

    Read from the database, not kept per worker: a worker's gauge would only know the balances
    it happened to change, and workers' gauges do not add up. The label is the user id, never a
    name, so the text names nobody.
    """

    def __init__(self, read):
        """`read()` yields (user id, balance in credits) pairs."""
        self.read = read

    def collect(self):
        family = GaugeMetricFamily("user_balance", "A user's credit balance (1 credit = 1 USD).", labels=("user",))
        for user_id, balance in self.read():
            family.add_metric((str(user_id),), balance)
        yield family


def exposition(*collectors):
    """The Prometheus text of every worker's series plus `collectors` (read at this scrape)."""
    registry = CollectorRegistry()
    if MULTIPROCESS:
        MultiProcessCollector(registry)
    else:
        registry.register(_SERIES)        # a registry collects like any collector
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry)
