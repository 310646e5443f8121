"""Health state shared through Redis (`REDIS_URL`), so every worker of every instance sees one state.

`RedisBreakers` and `RedisKeyHealth` keep the public API of `gateway.health` and the same rules,
but their state lives in Redis: circuit transitions run as Lua scripts (atomic across workers, so
one half-open probe goes out in total), times are wall-clock `time.time()` (monotonic clocks differ
between processes), and every entry expires once idle for a day. Losing Redis never fails a
request: each call falls back to the worker's own state (the parent class), a warning is logged at
most once a minute, and Redis is tried again after a short back-off.

The `redis` package (6 MiB per worker) is imported only by a worker that is given a Redis URL.
"""
import json
import logging
import time

from gateway.health import MAX_TRIP_FACTOR, OWN, Breakers, KeyHealth

PREFIX = "llmgw:"
IDLE_TTL_MS = 86_400_000      # a circuit, or a key out until fixed, that nobody touched for a day is forgotten
SOCKET_TIMEOUT_S = 0.2
BACKOFF_S = 5.0               # after a failure, calls use local state this long before trying Redis again
WARN_EVERY_S = 60.0

log = logging.getLogger(__name__)

# A circuit is a hash: state, failures, opened_at, trips, last_failure, ncallers, and a `c:<caller>`
# field per distinct caller counted (up to the quorum). A missing hash is a closed circuit.
_LUA_DUE = """
-- may a call pass this circuit now? and is it not closed (so passing takes the probe)?
local function due(key, now, recovery)
  local state, opened_at, trips = unpack(redis.call('HMGET', key, 'state', 'opened_at', 'trips'))
  if not state or state == 'closed' then return true, false end
  local period = recovery
  if state == 'open' then period = recovery * math.min(tonumber(trips), tonumber(ARGV[3])) end
  return now - tonumber(opened_at) >= period, true
end
"""
# KEYS: index of shared circuits, the circuits to pass (shared, then the caller's own);
# ARGV: now, recovery, max trip factor, ttl ms.
_ALLOW = _LUA_DUE + """
local now, recovery = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 2, #KEYS do
  local pass, probe = due(KEYS[i], now, recovery)
  if not pass then return 0 end
  if probe then
    redis.call('HSET', KEYS[i], 'state', 'half_open', 'opened_at', ARGV[1])
    redis.call('PEXPIRE', KEYS[i], ARGV[4])
    if i == 2 then redis.call('SADD', KEYS[1], KEYS[2]); redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
  end
end
return 1
"""
# KEYS: the circuits to pass; ARGV: as for _ALLOW. Looks without taking the probe.
_WOULD_ALLOW = _LUA_DUE + """
for _, key in ipairs(KEYS) do
  if not due(key, tonumber(ARGV[1]), tonumber(ARGV[2])) then return 0 end
end
return 1
"""
# KEYS: index of shared circuits, the shared circuit, the caller's own (if any);
# ARGV: now, caller, quorum of the shared circuit, threshold, ttl ms.
_FAILURE = """
local now = ARGV[1]
for i = 2, #KEYS do
  local key, quorum = KEYS[i], 1
  if i == 2 then quorum = tonumber(ARGV[3]) end
  local failures = redis.call('HINCRBY', key, 'failures', 1)
  local state = redis.call('HGET', key, 'state') or 'closed'
  local callers = tonumber(redis.call('HGET', key, 'ncallers') or '0')
  if callers < quorum and redis.call('HSETNX', key, 'c:' .. ARGV[2], 1) == 1 then
    callers = redis.call('HINCRBY', key, 'ncallers', 1)
  end
  if state == 'half_open' or (failures >= tonumber(ARGV[4]) and callers >= quorum) then
    if state ~= 'open' then redis.call('HINCRBY', key, 'trips', 1) end
    state = 'open'
    redis.call('HSET', key, 'opened_at', now)
  end
  redis.call('HSET', key, 'state', state, 'last_failure', now)
  redis.call('PEXPIRE', key, ARGV[5])
end
redis.call('SADD', KEYS[1], KEYS[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
"""
# KEYS: shared circuit, own circuit or ''; ARGV: ttl ms. A success makes the shared circuit fresh
# (still listed, as in memory) and forgets the caller's own.
_SUCCESS = """
local state, failures = unpack(redis.call('HMGET', KEYS[1], 'state', 'failures'))
if state and (state ~= 'closed' or failures ~= '0') then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0, 'trips', 0, 'opened_at', 0, 'ncallers', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
if KEYS[2] ~= '' then redis.call('DEL', KEYS[2]) end
"""
# KEYS: index of shared circuits. Returns [key, state, failures, last_failure, ...]; forgets expired ones.
_SNAPSHOT = """
local out = {}
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local state, failures, last = unpack(redis.call('HMGET', key, 'state', 'failures', 'last_failure'))
  if state then
    table.insert(out, key); table.insert(out, state); table.insert(out, failures); table.insert(out, last or '')
  else
    redis.call('SREM', KEYS[1], key)
  end
end
return out
"""


def no_retries():
    """redis-py's retry setting for one attempt: a failed call falls back to local state at once."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


class RedisFallback:
    """Calls that go to Redis while it answers, and to local state while it does not.

    A failed call falls back at once and marks the link `degraded` (True until a call succeeds
    again); Redis is left alone for `backoff` seconds, so a dead Redis adds no latency to every
    request, and the loss is logged at most once a minute per worker.
    """

    def __init__(self, lost, back, errors, backoff=BACKOFF_S, logger=log):
        """`lost`/`back`: what the warnings (to `logger`) say happens without Redis, and once it answers again;
        `errors`: the exceptions that mean Redis is lost."""
        self.lost_message, self.back_message, self.errors, self.backoff = lost, back, errors, backoff
        self.log = logger
        self.degraded = False
        self.outages = 0          # counts losses, so local state can start each outage afresh
        self._retry_at = 0.0
        self._warned_at = None

    def run(self, shared, local, *args):
        """`shared(*args)` through Redis, or `local(*args)` while Redis is unreachable."""
        if time.monotonic() >= self._retry_at:
            try:
                result = shared(*args)
            except self.errors as exc:
                self._lost(exc)
            else:
                if self.degraded:
                    self.degraded = False
                    self.log.warning("Redis is reachable again: %s", self.back_message)
                return result
        return local(*args)

    def _lost(self, exc):
        now = time.monotonic()
        if not self.degraded:
            self.outages += 1
        self.degraded = True
        self._retry_at = now + self.backoff
        if self._warned_at is None or now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            self.log.warning("Redis unreachable (%s): %s until it is back", exc, self.lost_message)


class SharedState(RedisFallback):
    """The Redis connection of one worker for circuit breakers and key health."""

    scope = "every worker and instance"

    def __init__(self, url, prefix=PREFIX, clock=time.time, backoff=BACKOFF_S):
        import redis

        super().__init__("circuit breakers and key health are per worker", "health state is shared again",
                         redis.RedisError, backoff=backoff)
        self.client = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S,
                                           retry=no_retries())
        self.prefix, self.clock = prefix, clock
        self._scripts = {name: self.client.register_script(source) for name, source in
                         (("allow", _ALLOW), ("would_allow", _WOULD_ALLOW), ("failure", _FAILURE),
                          ("success", _SUCCESS), ("snapshot", _SNAPSHOT))}

    def breakers(self, settings, clock=time.monotonic):
        return RedisBreakers(settings, self, clock)

    def key_health(self, clock=time.monotonic):
        return RedisKeyHealth(self, clock)

    def script(self, name, keys, args):
        return self._scripts[name](keys=keys, args=args)


class _FallsBack:
    """Runs a call through Redis, else on the parent class's local state (cleared when an outage starts)."""

    def _through(self, shared, local, *args):
        return self.link.run(shared, self._local(local), *args)

    def _local(self, local):
        def call(*args):
            with self._lock:
                if self._outage != self.link.outages:     # state left from an earlier outage is stale
                    self._outage = self.link.outages
                    self._forget_local()
            return local(*args)
        return call


class RedisBreakers(_FallsBack, Breakers):
    """`Breakers` whose state every worker shares through Redis."""

    def __init__(self, settings, link, clock=time.monotonic):
        super().__init__(settings, clock)
        self.link, self._outage = link, link.outages
        self._index = link.prefix + "circuits"

    def allow(self, name, caller=None):
        return self._through(self._allow, super().allow, name, caller)

    def would_allow(self, name, caller=None):
        return self._through(self._would_allow, super().would_allow, name, caller)

    def success(self, name, caller=None):
        self._through(self._success, super().success, name, caller)

    def failure(self, name, caller=None):
        self._through(self._failure, super().failure, name, caller)

    def snapshot(self):
        return self._through(self._snapshot, super().snapshot)

    def _allow(self, name, caller):
        return self.link.script("allow", [self._index] + self._keys(name, caller), self._due_args()) == 1

    def _would_allow(self, name, caller):
        return self.link.script("would_allow", self._keys(name, caller), self._due_args()) == 1

    def _success(self, name, caller):
        own = self._key(f"{name}{OWN}{caller}") if caller is not None else ""
        self.link.script("success", [self._key(name), own], [IDLE_TTL_MS])

    def _failure(self, name, caller):
        quorum = self.quorum if caller is not None else 1
        self.link.script("failure", [self._index] + self._keys(name, caller),
                         [self.link.clock(), "" if caller is None else caller, quorum, self.threshold, IDLE_TTL_MS])

    def _snapshot(self):
        flat = self.link.script("snapshot", [self._index], [])
        cut = len(self._key(""))
        return {flat[i][cut:].decode(): {
                    "state": flat[i + 1].decode(), "failure_count": int(flat[i + 2] or 0),
                    "last_failure_time": float(flat[i + 3]) if flat[i + 3] else None,
                    "failure_threshold": self.threshold, "recovery_timeout": self.recovery}
                for i in range(0, len(flat), 4)}

    def _keys(self, name, caller):
        return [self._key(name)] + ([self._key(f"{name}{OWN}{caller}")] if caller is not None else [])

    def _key(self, name):
        return f"{self.link.prefix}cb:{name}"

    def _due_args(self):
        return [self.link.clock(), self.recovery, MAX_TRIP_FACTOR, IDLE_TTL_MS]

    def _forget_local(self):
        self._state.clear()


class RedisKeyHealth(_FallsBack, KeyHealth):
    """`KeyHealth` shared through Redis: one string per scope (or scope|model) saying why it is out.

    A cooldown expires with the Redis key (PX). A key out until fixed stays out a day at most: in
    Redis a restart no longer clears it, and an operator key has no other way back into rotation.
    """

    def __init__(self, link, clock=time.monotonic):
        super().__init__(clock)
        self.link, self._outage = link, link.outages

    def usable(self, scope, model_id=None):
        if scope is None:
            return True
        return self._through(self._usable, super().usable, scope, model_id)

    def mark_bad(self, scope, reason):
        self._through(self._mark_bad, super().mark_bad, scope, reason)

    def cool_down(self, scope, seconds, reason, model_id=None):
        self._through(self._cool_down, super().cool_down, scope, seconds, reason, model_id)

    def restore(self, scope):
        self._through(self._restore, super().restore, scope)

    def snapshot(self):
        return self._through(self._snapshot, super().snapshot)

    def _usable(self, scope, model_id):
        names = [scope] + ([f"{scope}|{model_id}"] if model_id is not None else [])
        return self.link.client.exists(*map(self._key, names)) == 0

    def _mark_bad(self, scope, reason):
        if scope is not None:
            self._put(scope, {"reason": reason, "until_fixed": True}, IDLE_TTL_MS)

    def _cool_down(self, scope, seconds, reason, model_id):
        if scope is not None:
            name = f"{scope}|{model_id}" if model_id is not None else scope
            self._put(name, {"reason": reason, "until_fixed": False}, max(1, int(seconds * 1000)))

    def _put(self, name, entry, ttl_ms):
        self.link.client.set(self._key(name), json.dumps(entry), px=ttl_ms)

    def _restore(self, scope):
        per_model = self.link.client.scan_iter(match=_glob_escape(self._key(scope)) + "|*", count=1000)
        self.link.client.delete(self._key(scope), *per_model)

    def _snapshot(self):
        cut = len(self._key(""))
        names = list(self.link.client.scan_iter(match=_glob_escape(self._key("")) + "*", count=1000))
        with self.link.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.get(name)
                pipe.pttl(name)
            found = pipe.execute()
        out = {}
        for name, value, ttl_ms in zip(names, found[::2], found[1::2]):
            if value is None:                        # expired since the scan
                continue
            entry = json.loads(value)
            out[name[cut:].decode()] = {"reason": entry["reason"],
                                        "until": None if entry["until_fixed"] else round(ttl_ms / 1000, 1)}
        return out

    def _key(self, name):
        return f"{self.link.prefix}key:{name}"

    def _forget_local(self):
        self._out.clear()


def _glob_escape(text):
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
