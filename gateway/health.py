"""Per-process health state: circuit breakers per provider+model and per key, and key cooldowns.

Both are plain in-memory tables guarded by one lock; gevent workers share nothing, so each
worker learns about a failing upstream by itself (Redis sharing is a later step).
"""
import threading
import time

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
MAX_TRIP_FACTOR = 10      # repeated trips lengthen the open period up to 10 × recovery_timeout


class Breakers:
    """Circuit breakers: open after N consecutive failures, one probe after the recovery time."""

    def __init__(self, settings, clock=time.monotonic):
        self.threshold = settings.failure_threshold
        self.recovery = settings.recovery_timeout
        self.clock = clock
        self._lock = threading.Lock()
        self._state = {}      # name -> dict(state, failures, opened_at, trips, last_failure)

    def allow(self, name):
        """True when a call may go out; a recovered open circuit lets one probe through.

        A probe that never reports back (never sent, or answered neither way) frees the next
        one after another recovery period, so a circuit can never stay half-open for good.
        """
        with self._lock:
            entry = self._state.get(name)
            if entry is None or entry["state"] == CLOSED:
                return True
            if self._due_for_probe(entry):
                entry["state"] = HALF_OPEN
                entry["opened_at"] = self.clock()
                return True
            return False

    def would_allow(self, name):
        """What `allow` would answer, without taking the probe: for choosing among keys."""
        with self._lock:
            entry = self._state.get(name)
            return entry is None or entry["state"] == CLOSED or self._due_for_probe(entry)

    def success(self, name):
        with self._lock:
            if name in self._state:
                self._state[name] = self._fresh()

    def failure(self, name):
        with self._lock:
            entry = self._state.setdefault(name, self._fresh())
            entry["failures"] += 1
            entry["last_failure"] = time.time()
            if entry["state"] == HALF_OPEN or entry["failures"] >= self.threshold:
                if entry["state"] != OPEN:
                    entry["trips"] += 1
                entry["state"] = OPEN
                entry["opened_at"] = self.clock()

    def provider_usable(self, provider):
        """False only when every known circuit of the provider's models is open (no probe needed)."""
        with self._lock:
            states = [e["state"] for name, e in self._state.items() if name.startswith(provider + "/")]
        return not states or any(state != OPEN for state in states)

    def snapshot(self):
        """A JSON-ready view for /health/circuit-breakers."""
        with self._lock:
            return {name: {"state": e["state"], "failure_count": e["failures"], "last_failure_time": e["last_failure"],
                           "failure_threshold": self.threshold, "recovery_timeout": self.recovery}
                    for name, e in self._state.items()}

    def _due_for_probe(self, entry):
        period = self._open_period(entry) if entry["state"] == OPEN else self.recovery
        return self.clock() - entry["opened_at"] >= period

    def _open_period(self, entry):
        return self.recovery * min(entry["trips"], MAX_TRIP_FACTOR)

    @staticmethod
    def _fresh():
        return {"state": CLOSED, "failures": 0, "opened_at": 0.0, "trips": 0, "last_failure": None}


class KeyHealth:
    """Keys taken out of rotation: 401/403 until fixed (or restart), 429 until Retry-After passes."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._out = {}        # key id -> (until, reason)

    def usable(self, key_id):
        with self._lock:
            until, _ = self._out.get(key_id, (0.0, ""))
            return self.clock() >= until

    def mark_bad(self, key_id, reason):
        with self._lock:
            self._out[key_id] = (float("inf"), reason)

    def cool_down(self, key_id, seconds, reason):
        with self._lock:
            self._out[key_id] = (self.clock() + seconds, reason)

    def restore(self, key_id):
        with self._lock:
            self._out.pop(key_id, None)

    def snapshot(self):
        now = self.clock()
        with self._lock:
            return {kid: {"reason": reason, "until": None if until == float("inf") else round(until - now, 1)}
                    for kid, (until, reason) in self._out.items() if until > now}
