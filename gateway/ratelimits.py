"""Rate limits with the `limits` library: per key, user, IP and global, each an exact moving window.

How far a count reaches is the storage's: Redis (`REDIS_URL`, limits' own storage) is one count
for every worker of every instance; the instance file (gateway.limitfile) one count for the
workers of one instance; memory (when the instance keeps no state file) one count per worker.
Losing Redis never fails a request: the call is counted in the local storage instead, a warning
is logged at most once a minute, and Redis is tried again after a short back-off.

A request is counted against all of its limits or none: every window is looked at first, so a
request refused by one limit takes nothing from the others (bar a race for the last entry), and a
refused request is no entry at all, so a client that keeps knocking is not blocked beyond the window.
"""
import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerHour, RateLimitItemPerMinute
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway.limitfile import InstanceFileStorage
from gateway.sharedstate import PREFIX, SOCKET_TIMEOUT_S, RedisFallback

log = logging.getLogger(__name__)

PER_MINUTE = RateLimitItemPerMinute       # module names, so a test can shrink the windows
PER_HOUR = RateLimitItemPerHour


@dataclass(frozen=True)
class Window:
    """One limit as a request left it: what X-RateLimit-* and Retry-After say."""
    limit: int
    remaining: int
    reset_at: float           # epoch seconds at which one more request fits
    counted_at: float         # epoch seconds of the count: Reset and Retry-After are both from this instant
    allowed: bool = True
    scope: str = ""           # "key", "user", "global", "ip", or the throttled endpoint
    rate: str = ""            # e.g. "10 per 1 minute"

    def reset_in(self):
        """Whole seconds until one more request fits: X-RateLimit-Reset, and a refused request's
        Retry-After (at least 1)."""
        return max(0 if self.allowed else 1, math.ceil(self.reset_at - self.counted_at))


class RateLimits:
    """The configured limits and the storage that counts them, for one worker."""

    def __init__(self, settings, redis_url=None, path=None):
        """`settings`: gateway.config.LimitSettings; `path`: the instance file, else counts stay in memory."""
        self.settings = settings
        self.local_name = "instance file" if path else "memory"
        self._local = MovingWindowRateLimiter(InstanceFileStorage(path) if path else MemoryStorage())
        self._redis = redis_url and MovingWindowRateLimiter(storage_from_string(
            _limits_scheme(redis_url), key_prefix=PREFIX + "limits", socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S, retry=Retry(NoBackoff(), 0)))   # no retries: fall back at once
        self._link = self._redis and RedisFallback(f"rate limits are counted locally ({self.local_name})",
                                                   "rate limits are shared again", self._redis.storage.base_exceptions,
                                                   logger=log)

    @property
    def degraded(self):
        """Redis is configured but lost: counts go to the local storage."""
        return bool(self._link and self._link.degraded)

    @property
    def storage_name(self):
        """Where counts go now: "redis", or the local storage's name while Redis is lost or not configured."""
        return "redis" if self._redis and not self.degraded else self.local_name

    def for_key(self, user_id, key_id, key_rpm=None):
        """An API request's limits, in the order they are checked: the key's (its own `rpm`, else
        `key_per_minute`), its user's, the global one. Each is (limits item, identifiers); 0 is no limit."""
        rpm = self.settings.key_per_minute if key_rpm is None else key_rpm
        return [(kind(amount), identifiers) for kind, amount, identifiers in (
                    (PER_MINUTE, rpm, ("key", str(key_id))),
                    (PER_MINUTE, self.settings.user_per_minute, ("user", str(user_id))),
                    (PER_HOUR, self.settings.global_per_hour, ("global",)))
                if amount > 0]

    def for_address(self, address):
        """The limit of the unauthenticated routes, per client address."""
        amount = self.settings.ip_per_minute
        return [(PER_MINUTE(amount), ("ip", address))] if amount > 0 else []

    def hit(self, items):
        """Count one request against every limit in `items` (see `for_key`), or against none when
        one is used up.

        :return: the Window to report, the refusing limit's or else the tightest one; None for no limits.
        """
        if not items:
            return None
        if self._redis:
            return self._link.run(lambda: _hit(self._redis, items), lambda: _hit(self._local, items))
        return _hit(self._local, items)


def _limits_scheme(redis_url):
    """limits names redis-py's `unix://` URLs `redis+unix://`."""
    return "redis+" + redis_url if redis_url.startswith("unix://") else redis_url


def _hit(limiter, items):
    """Look at every window, then take an entry in each; a limit that filled meanwhile refuses."""
    windows = []
    for item, identifiers in items:
        stats = limiter.get_window_stats(item, *identifiers)
        if stats.remaining < 1:
            return _window(item, identifiers, 0, stats.reset_time, allowed=False)
        windows.append(_window(item, identifiers, stats.remaining - 1, stats.reset_time))
    for item, identifiers in items:
        if not limiter.hit(item, *identifiers):          # another request took the last entry first
            reset_at = limiter.get_window_stats(item, *identifiers).reset_time
            return _window(item, identifiers, 0, reset_at, allowed=False)
    return min(windows, key=lambda w: (w.remaining, -w.reset_at))


def _window(item, identifiers, remaining, reset_at, allowed=True):
    return Window(item.amount, remaining, reset_at, time.time(), allowed, scope=identifiers[0], rate=str(item))
