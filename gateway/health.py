"""Health state: circuit breakers and keys out of rotation, each scoped to what failed.

These classes keep it in the worker's memory; with `REDIS_URL`, gateway.sharedstate shares it
between workers and instances under the same rules.

Scopes (the README's routing section states the rules):
- a provider+model circuit (`openai/gpt-4o`) counts that model's 5xx and timeouts;
- a key circuit (`key:<scope>`) counts only failures of the key's endpoint (no connection, TLS);
- a key is out of rotation for every model after 401 or an exhausted quota, for one model after 403.

A shared circuit is one that users depend on, so no single user can open it: it opens only when
its consecutive failures were seen by `distinct_callers` different users. Each user also has a
circuit of their own per shared one, which opens on their failures alone, so a user who keeps
hitting a failing model is skipped without a call, and nobody else is.
"""
import threading
import time

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
MAX_TRIP_FACTOR = 10      # repeated trips lengthen the open period up to 10 × recovery_timeout
OWN = "@"                 # `name@caller`: a caller's own circuit beside the shared `name`


class Breakers:
    """Circuit breakers: open after N consecutive failures, one probe after the recovery time."""

    def __init__(self, settings, clock=time.monotonic):
        self.threshold = settings.failure_threshold
        self.recovery = settings.recovery_timeout
        self.quorum = getattr(settings, "distinct_callers", 1)
        self.clock = clock
        self._lock = threading.Lock()
        self._state = {}      # name -> dict(state, failures, opened_at, trips, last_failure, callers)

    def allow(self, name, caller=None):
        """True when a call may go out for `caller`; a recovered open circuit lets one probe through.

        A probe that never reports back (never sent, or answered neither way) frees the next
        one after another recovery period, so a circuit can never stay half-open for good.
        """
        with self._lock:
            return all(self._take(entry) for entry in self._entries(name, caller))

    def would_allow(self, name, caller=None):
        """What `allow` would answer, without taking the probe: for choosing among keys."""
        with self._lock:
            return all(e["state"] == CLOSED or self._due_for_probe(e) for e in self._entries(name, caller))

    def success(self, name, caller=None):
        with self._lock:
            if name in self._state:
                self._state[name] = self._fresh()
            if caller is not None:
                self._state.pop(own_circuit(name, caller), None)

    def failure(self, name, caller=None):
        """Count one failure seen by `caller` (None: the gateway itself, which needs no quorum)."""
        with self._lock:
            self._count(name, caller, self.quorum if caller is not None else 1)
            if caller is not None:
                self._count(own_circuit(name, caller), caller, 1)

    def provider_usable(self, provider):
        """False only when every known shared circuit of the provider's models is open (no probe needed)."""
        states = [e["state"] for name, e in self.snapshot().items() if name.startswith(provider + "/")]
        return not states or any(state != OPEN for state in states)

    def snapshot(self):
        """A JSON-ready view of the shared circuits, for /health/circuit-breakers and the admin."""
        with self._lock:
            return {name: {"state": e["state"], "failure_count": e["failures"], "last_failure_time": e["last_failure"],
                           "failure_threshold": self.threshold, "recovery_timeout": self.recovery}
                    for name, e in self._state.items() if OWN not in name}

    def _entries(self, name, caller):
        entries = [self._state.get(name)]
        if caller is not None:
            entries.append(self._state.get(own_circuit(name, caller)))
        return [e for e in entries if e is not None and e["state"] != CLOSED] or ()

    def _take(self, entry):
        if self._due_for_probe(entry):
            entry["state"] = HALF_OPEN
            entry["opened_at"] = self.clock()
            return True
        return False

    def _count(self, name, caller, quorum):
        entry = self._state.setdefault(name, self._fresh())
        entry["failures"] += 1
        entry["last_failure"] = time.time()
        if len(entry["callers"]) < quorum:
            entry["callers"].add(caller)
        if entry["state"] == HALF_OPEN or (entry["failures"] >= self.threshold and len(entry["callers"]) >= quorum):
            if entry["state"] != OPEN:
                entry["trips"] += 1
            entry["state"] = OPEN
            entry["opened_at"] = self.clock()

    def _due_for_probe(self, entry):
        if entry["state"] == CLOSED:
            return True
        period = self._open_period(entry) if entry["state"] == OPEN else self.recovery
        return self.clock() - entry["opened_at"] >= period

    def _open_period(self, entry):
        return self.recovery * min(entry["trips"], MAX_TRIP_FACTOR)

    @staticmethod
    def _fresh():
        return {"state": CLOSED, "failures": 0, "opened_at": 0.0, "trips": 0, "last_failure": None, "callers": set()}


def own_circuit(name, caller):
    return f"{name}{OWN}{caller}" if caller is not None else name


class KeyHealth:
    """Keys out of rotation, by scope: until fixed (401, quota), or until a time passes (429, 403)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._out = {}        # scope, or scope|model -> (until, reason)

    def usable(self, scope, model_id=None):
        """May the key with `scope` serve `model_id`? Keys without a scope carry no remembered state."""
        if scope is None:
            return True
        now = self.clock()
        with self._lock:
            return all(self._out.get(name, (0.0, ""))[0] <= now for name in (scope, _for_model(scope, model_id)))

    def mark_bad(self, scope, reason):
        self._set(scope, float("inf"), reason)

    def cool_down(self, scope, seconds, reason, model_id=None):
        """Out for `seconds`: for every model, or for `model_id` only (the key may not use that model)."""
        self._set(_for_model(scope, model_id), self.clock() + seconds, reason)

    def restore(self, scope):
        with self._lock:
            for name in [n for n in self._out if n == scope or n.startswith(scope + "|")]:
                del self._out[name]

    def snapshot(self):
        """scope (or scope|model) -> reason and seconds left (None = until fixed), for the admin."""
        now = self.clock()
        with self._lock:
            return {name: {"reason": reason, "until": None if until == float("inf") else round(until - now, 1)}
                    for name, (until, reason) in self._out.items() if until > now}

    def _set(self, name, until, reason):
        if name is None:
            return
        with self._lock:
            now = self.clock()
            for stale in [n for n, (at, _) in self._out.items() if at <= now]:     # keep the table small
                del self._out[stale]
            self._out[name] = (until, reason)


def _for_model(scope, model_id):
    return f"{scope}|{model_id}" if scope is not None and model_id is not None else scope
