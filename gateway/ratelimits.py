"""Rate limits: per key, user, IP and global, each an exact moving window of the `limits` library's items.

How far a count reaches is the storage's: Redis (`REDIS_URL`, limits' own storage) is one count
for every worker of every instance; the instance file (gateway.limitfile) one count for the
workers of one instance; memory (when the instance keeps no state file) one count per worker.
Losing Redis never fails a request: the call is counted in the local storage instead, a warning
is logged at most once a minute, and Redis is tried again after a short back-off.

A request is counted against all of its limits or none, and a refused request is no entry at all,
so a client that keeps knocking is not blocked beyond the window. The instance file and memory
look at every window and take the entries under one lock; Redis looks at every window first and
then takes an entry in each, so there a limit that filled meanwhile (a race for the last entry)
refuses after the limits before it took theirs. A limit's key and wording are made once per
distinct limit, not per request.
"""
import functools
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from limits import RateLimitItemPerHour, RateLimitItemPerMinute
from limits.storage import storage_from_string

from gateway.limitfile import SWEEP_EVERY_S, InstanceFile
from gateway.sharedstate import PREFIX, SOCKET_TIMEOUT_S, RedisFallback, no_retries

log = logging.getLogger(__name__)

PER_MINUTE = RateLimitItemPerMinute       # module names, so a test can shrink the windows
PER_HOUR = RateLimitItemPerHour


@dataclass(frozen=True)
class Limit:
    """One limit a request counts against: where its window is kept, and what its headers say."""
    key: str                  # limits' own key for the item and identifiers, so Redis counts stay where they were
    amount: int
    expiry: int               # the window, in seconds
    scope: str                # "key", "user", "global", "ip", or the throttled endpoint
    rate: str                 # e.g. "10 per 1 minute"

    @classmethod
    def of(cls, item, identifiers):
        """The limit of a limits item (e.g. `parse("10 per minute")`) for `identifiers`, the first naming its scope."""
        return cls(item.key_for(*identifiers), item.amount, item.get_expiry(), identifiers[0], str(item))


@functools.lru_cache(maxsize=4096)          # a few MB at most: a miss costs only the making
def _limit(kind, amount, identifiers):
    """`Limit.of(kind(amount), identifiers)`, made once for each distinct limit."""
    return Limit.of(kind(amount), identifiers)


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
        self._local = InstanceFile(path) if path else MemoryWindows()
        self._redis = redis_url and RedisWindows(redis_url)
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
        `key_per_minute`), its user's, the global one; 0 is no limit."""
        rpm = self.settings.key_per_minute if key_rpm is None else key_rpm
        return [_limit(kind, amount, identifiers) for kind, amount, identifiers in (
                    (PER_MINUTE, rpm, ("key", str(key_id))),
                    (PER_MINUTE, self.settings.user_per_minute, ("user", str(user_id))),
                    (PER_HOUR, self.settings.global_per_hour, ("global",)))
                if amount > 0]

    def for_address(self, address):
        """The limit of the unauthenticated routes, per client address."""
        amount = self.settings.ip_per_minute
        return [_limit(PER_MINUTE, amount, ("ip", address))] if amount > 0 else []

    def hit(self, limits):
        """Count one request against every Limit in `limits` (see `for_key`; distinct keys), or
        against none when one is used up.

        :return: the Window to report, the refusing limit's or else the tightest one; None for no limits.
        """
        if not limits:
            return None
        if self._redis:
            return _window(limits, *self._link.run(self._redis.take, self._local.take, limits))
        return _window(limits, *self._local.take(limits))


class MemoryWindows:
    """Exact moving windows in this worker's memory: per key, the times of its entries still in the window."""

    def __init__(self, clock=time.time):
        self.clock = clock
        self._windows = {}        # key: (window in seconds, deque of entry times, oldest first)
        self._lock = threading.Lock()
        self._swept_at = 0.0

    def take(self, limits):
        """As gateway.limitfile.InstanceFile.take, for this worker alone."""
        with self._lock:
            now = self.clock()
            if now - self._swept_at >= SWEEP_EVERY_S:
                self._sweep(now)
            looks, windows = [], []
            for limit in limits:
                window = self._windows.get(limit.key) or self._windows.setdefault(limit.key, (limit.expiry, deque()))
                times = window[1]
                while times and times[0] <= now - limit.expiry:
                    times.popleft()
                looks.append((len(times), times[0] if times else now))
                if len(times) >= limit.amount:
                    return False, looks, now
                windows.append(times)
            for times in windows:
                times.append(now)
            return True, looks, now

    def _sweep(self, now):
        """Forget the keys whose every entry left the window."""
        self._windows = {key: (expiry, times) for key, (expiry, times) in self._windows.items()
                         if times and times[-1] > now - expiry}
        self._swept_at = now


class RedisWindows:
    """Moving windows in Redis through limits' own storage (its keys and scripts): one count for
    every worker of every instance. Every window is looked at first, then an entry taken in each."""

    def __init__(self, redis_url):
        self.storage = storage_from_string(
            _limits_scheme(redis_url), key_prefix=PREFIX + "limits", socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S, retry=no_retries())

    def take(self, limits):
        """As gateway.limitfile.InstanceFile.take, but a limit that fills between the look and the
        take refuses after the limits before it took their entries."""
        looks = []
        for limit in limits:
            start, count = self.storage.get_moving_window(limit.key, limit.amount, limit.expiry)
            looks.append((count, start))
            if count >= limit.amount:
                return False, looks, time.time()
        for i, limit in enumerate(limits):
            if not self.storage.acquire_entry(limit.key, limit.amount, limit.expiry):   # another took the last entry
                start, count = self.storage.get_moving_window(limit.key, limit.amount, limit.expiry)
                return False, looks[:i] + [(count, start)], time.time()
        return True, looks, time.time()


def _limits_scheme(redis_url):
    """limits names redis-py's `unix://` URLs `redis+unix://`."""
    return "redis+" + redis_url if redis_url.startswith("unix://") else redis_url


def _window(limits, taken, looks, now):
    """The Window to report: the refusing limit's (the last one looked at), or else the one with
    the fewest entries left, the later reset first."""
    if not taken:
        refusing, (_, start) = limits[len(looks) - 1], looks[-1]
        return Window(refusing.amount, 0, start + refusing.expiry, now, False, refusing.scope, refusing.rate)
    remaining, reset_at, tightest = min(((each.amount - count - 1, start + each.expiry, each)
                                         for each, (count, start) in zip(limits, looks)), key=lambda w: (w[0], -w[1]))
    return Window(tightest.amount, remaining, reset_at, now, True, tightest.scope, tightest.rate)
