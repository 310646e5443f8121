"""The routing service: candidates × keys, retries with backoff, circuit breakers, one deadline,
and stream-safe failover (commit to a candidate only once its first content chunk arrived).

The router works on an immutable request dict and returns results; it never touches HTTP
contexts. It is the only reader of an UpstreamError's kind.
"""
import functools
import random
import time
from dataclasses import dataclass, field
from itertools import chain

from gateway import errors, ssrf
from gateway.affinity import by_affinity
from gateway.health import Breakers, KeyHealth
from gateway.providers.base import Target
from gateway.tokens import estimate_prompt, estimate_text


@dataclass
class Attempt:
    """One try at one (model, provider, key): what the request log records."""
    model: str
    provider: str
    key_id: str | None
    status: int | None = None
    latency_ms: float = 0.0
    error: str | None = None
    kind: str | None = None
    retry_after: float | None = None

    def as_dict(self):
        return {"model": self.model, "provider": self.provider, "key_id": self.key_id, "status": self.status,
                "latency_ms": round(self.latency_ms, 1), "error": self.error, "kind": self.kind}


@dataclass
class RouteResult:
    """A served non-stream request: the OpenAI-shaped body and who answered it."""
    body: dict
    model: object
    attempts: list
    usage: dict = field(default_factory=dict)
    dropped: list = field(default_factory=list)      # request fields the answering family ignored


class Router:
    """Tries candidates in order; see `_run` for the policy."""

    def __init__(self, settings, adapters, clock=time.monotonic, sleep=time.sleep, rand=random.random, shared=None):
        """`shared`: where health state is shared (Redis, gateway.sharedstate, or the instance's file,
        gateway.localstate); None keeps it in this worker's memory."""
        self.settings = settings
        self.adapters = adapters
        self.clock, self.sleep, self.rand = clock, sleep, rand
        self.breakers = shared.breakers(settings.breaker, clock) if shared else Breakers(settings.breaker, clock)
        self.key_health = shared.key_health(clock) if shared else KeyHealth(clock)

    # --- public entry points ---------------------------------------------------------------
    # `request_keys` are the caller's own provider keys, tried before the operator's; `tenant`
    # names the caller whose failures count towards shared circuits (see gateway.health); `affinity`
    # is a function naming the request's conversation, which orders the operator's keys of a provider
    # with key_order = "affinity" (see gateway.affinity); it is called only for such a provider, once.
    def complete(self, candidates, body, request_keys=None, tenant=None, affinity=None):
        deadline = self.clock() + self.settings.routing.request_timeout_s

        def call(target, adapter, timeout):
            return adapter.complete(target, body, timeout, deadline)

        result, model, attempts = self._run(candidates, call, deadline, request_keys, tenant, affinity)
        return RouteResult(result, model, attempts, result.get("usage") or {}, self._dropped(model, body))

    def embed(self, candidates, body, request_keys=None, tenant=None):
        deadline = self.clock() + self.settings.routing.request_timeout_s

        def call(target, adapter, timeout):
            return adapter.embed(target, body, timeout, deadline)

        result, model, attempts = self._run(candidates, call, deadline, request_keys, tenant)
        return RouteResult(result, model, attempts, result.get("usage") or {})

    def relay(self, endpoint, candidates, body, request_keys=None, tenant=None):
        """An endpoint passed through unchanged (gateway.passthrough); RouteResult.body is a Relayed answer."""
        deadline = self.clock() + self.settings.routing.request_timeout_s

        def call(target, adapter, timeout):
            return adapter.relay(endpoint, target, body, timeout, deadline)

        result, model, attempts = self._run(candidates, call, deadline, request_keys, tenant)
        return RouteResult(result, model, attempts, {})

    def count_tokens(self, candidates, body, request_keys=None, tenant=None):
        """The requested model's own count of a request's input tokens (no fallback: another model counts
        differently); RouteResult.body is Anthropic's {"input_tokens": N}."""
        deadline = self.clock() + self.settings.routing.request_timeout_s

        def call(target, adapter, timeout):
            return adapter.count_tokens(target, body, timeout, deadline)

        count, model, attempts = self._run(candidates[:1], call, deadline, request_keys, tenant)
        return RouteResult({"input_tokens": count}, model, attempts, {"prompt_tokens": count})

    def stream(self, candidates, body, request_keys=None, include_usage=False, tenant=None, affinity=None):
        """Open a stream, falling back until one candidate produced its first content chunk."""
        routing = self.settings.routing
        deadline = self.clock() + routing.request_timeout_s

        def call(target, adapter, timeout):
            ttft_deadline = min(deadline, self.clock() + routing.ttft_timeout_s)
            upstream = adapter.open_stream(target, body, (timeout[0], min(timeout[1], routing.ttft_timeout_s)),
                                           ttft_deadline)
            try:
                head = _read_until_content(upstream.chunks, self.clock, ttft_deadline)
                upstream.set_read_timeout(routing.stream_idle_timeout_s)
            except BaseException:
                upstream.close()
                raise
            return head, upstream

        (head, upstream), model, attempts = self._run(candidates, call, deadline, request_keys, tenant, affinity)
        session = StreamSession(model, attempts, chain(head, upstream.chunks), upstream.close, include_usage,
                                estimate_prompt(body))
        session.dropped = self._dropped(model, body)
        return session

    def _dropped(self, model, body):
        """What the family that answered accepted without effect (SPEC 2.1, X-Gateway-Dropped-Params)."""
        return self.adapters[self.settings.providers[model.provider].type].dropped_params(body)

    # --- the policy ------------------------------------------------------------------------
    def _run(self, candidates, call, deadline, request_keys, tenant, affinity=None):
        """Try each candidate model in order; for each, its keys in priority order.

        - REQUEST errors (400/404/413/422) are answered at once: the request itself is wrong.
        - AUTH takes the key out (401, quota exhausted: for every model; 403: for this model);
          RATE_LIMIT cools it down; the next key is tried at once, in the same client request.
          A key the caller sent is never replaced: its AUTH or RATE_LIMIT is the answer.
        - TRANSIENT/TIMEOUT count towards `max_attempts` for the model: an untried key first,
          otherwise the same key again after exponential backoff with jitter (and Retry-After).
        - Open circuits (per provider+model and per key endpoint) are skipped without a call.
        Everything happens before one overall deadline.
        """
        affinity = functools.cache(affinity or (lambda: None))      # the conversation, named at most once
        attempts = []
        for model in candidates:
            provider = self.settings.providers[model.provider]
            adapter = self.adapters[provider.type]
            keys = self._keys_for(provider, request_keys, affinity)
            outcome = self._try_model(model, provider, adapter, keys, call, deadline, attempts, tenant)
            if outcome is not None:
                return outcome, model, attempts
            if self.clock() >= deadline:
                break
        raise _final_error(attempts)

    def _try_model(self, model, provider, adapter, keys, call, deadline, attempts, tenant):
        circuit = f"{provider.name}/{model.id}"
        retries, used, retry_after = 0, set(), None
        while retries < self.settings.retry.max_attempts:
            if not self.breakers.allow(circuit, tenant):
                attempts.append(Attempt(model.id, provider.name, None, error="circuit open: skipped", kind="skipped"))
                return None
            key = self._pick_key(keys, used, model.id, tenant)
            if key is _NO_KEY:
                if not used:
                    attempts.append(Attempt(model.id, provider.name, None, error="no usable key", kind="skipped"))
                return None
            key_id = key.id if key else None
            if key_id in used and not self._backoff(retries, retry_after, deadline):
                return None
            remaining = deadline - self.clock()
            if remaining <= 0:
                return None
            used.add(key_id)
            attempt = Attempt(model.id, provider.name, key_id)
            attempts.append(attempt)
            started = self.clock()
            try:
                outcome = call(Target(provider, model, key), adapter,
                               (self.settings.routing.connect_timeout_s, remaining))
            except errors.UpstreamError as exc:
                if key is not None and key.secret in exc.message:     # an upstream that echoes the key back
                    exc.message = exc.message.replace(key.secret, "[redacted]")
                attempt.latency_ms = (self.clock() - started) * 1000
                attempt.status, attempt.error, attempt.kind = exc.status, exc.message, exc.kind
                attempt.retry_after = exc.retry_after
                self._record_failure(exc, circuit, model.id, key, attempts, tenant)
                if exc.retryable:
                    retries += 1
                    retry_after = exc.retry_after
                continue
            attempt.latency_ms = (self.clock() - started) * 1000
            attempt.status = 200
            self.breakers.success(circuit, tenant)
            if key is not None and key.scope is not None:
                self.breakers.success(f"key:{key.scope}", tenant)
            return outcome
        return None

    def _record_failure(self, exc, circuit, model_id, key, attempts, tenant):
        """Apply the taxonomy: answer request errors, retire or cool keys, feed the breaker of what failed.

        An upstream that answers 4xx is up: that closes the model's circuit like a success.
        """
        if exc.kind in (errors.REQUEST, errors.AUTH, errors.RATE_LIMIT):
            self.breakers.success(circuit, tenant)
        if exc.kind == errors.REQUEST:
            raise errors.GatewayError(exc.status or 400, f"The upstream rejected the request: {exc.message}",
                                      "invalid_request_error", "upstream_rejected_request", attempts=attempts)
        if key is not None and key.exclusive and exc.kind in (errors.AUTH, errors.RATE_LIMIT):
            raise _own_key_refused(exc, attempts)
        if exc.retryable:
            endpoint_of_key = exc.endpoint and key is not None and key.scope is not None
            self.breakers.failure(f"key:{key.scope}" if endpoint_of_key else circuit, tenant)
            return
        if key is None:
            return
        if exc.kind == errors.AUTH and exc.status == 403:       # this key may not use this model
            self.key_health.cool_down(key.scope, self.settings.retry.key_cooldown_s, f"403: {exc.message}", model_id)
        elif exc.kind == errors.AUTH:
            self.key_health.mark_bad(key.scope, f"{exc.status}: {exc.message}")
        elif exc.kind == errors.RATE_LIMIT:
            seconds = exc.retry_after if exc.retry_after is not None else self.settings.retry.key_cooldown_s
            self.key_health.cool_down(key.scope, seconds, f"429: {exc.message}")

    def _keys_for(self, provider, request_keys, affinity):
        """The request's own keys (header, then the user's, in priority order) before the operator's:
        in file order, or with `key_order = "affinity"` in the order of the request's conversation
        (`affinity()`, asked only then).

        Keyless families get [None]; a key the caller sent in a header is the only one used.
        A user's key with its own base URL is checked against SSRF again here, at call time:
        one that now resolves inward is dropped.
        """
        if provider.type == "demo":
            return [None]
        own = [k for k in (request_keys or {}).get(provider.name, ()) if k.base_url is None or self._safe(k.base_url)]
        if own and own[0].exclusive:
            return own[:1]
        if provider.key_order == "affinity":
            return own + by_affinity(provider.keys, affinity())
        return own + list(provider.keys)

    def _safe(self, url):
        try:
            ssrf.check_url(url, self.settings.user_url_allowlist)
        except ssrf.UnsafeURL:
            return False
        return True

    def _pick_key(self, keys, used, model_id, tenant):
        """Prefer a usable key not yet tried in this request; else retry a usable tried one.

        Only the chosen key's circuit is asked to `allow` (which may take its one probe);
        the others are looked at without changing their state.
        """
        usable = [k for k in keys if k is None or (self.key_health.usable(k.scope, model_id)
                                                   and self.breakers.would_allow(f"key:{k.scope}", tenant))]
        fresh_first = sorted(usable, key=lambda k: (k.id if k else None) in used)     # stable: priority kept
        for key in fresh_first:
            if key is None or key.scope is None or self.breakers.allow(f"key:{key.scope}", tenant):
                return key
        return _NO_KEY

    def _backoff(self, retries, retry_after, deadline):
        """Sleep before re-trying a key; False when the wait would pass the deadline."""
        retry = self.settings.retry
        delay = min(retry.max_delay, retry.base_delay * retry.exponential_base ** (retries - 1))
        if retry.jitter:
            delay *= 0.5 + self.rand() / 2
        if retry_after is not None:
            delay = max(delay, retry_after)
        if self.clock() + delay >= deadline:
            return False
        self.sleep(delay)
        return True


_NO_KEY = object()


def _has_content(chunk):
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("reasoning_content") or delta.get("tool_calls") or choice.get("finish_reason"):
            return True
    return False


def _read_until_content(chunks, clock, ttft_deadline):
    """Buffer chunks until the first content one: failures before it can still fall back."""
    head = []
    for chunk in chunks:
        head.append(chunk)
        if _has_content(chunk):
            return head
        if clock() > ttft_deadline:
            raise errors.UpstreamError(errors.TIMEOUT, "no first token before the time-to-first-token deadline")
    return head


def _own_key_refused(exc, attempts):
    """The caller's own key failed: say so, instead of quietly serving the request with another key."""
    refused = "rate-limited" if exc.kind == errors.RATE_LIMIT else "rejected"
    return errors.GatewayError(exc.status or 401, f"The upstream {refused} the provider key sent with this request "
                                                  f"({exc.status}: {exc.message}); no other key was tried.",
                               "rate_limit_error" if exc.kind == errors.RATE_LIMIT else "authentication_error",
                               "provider_key_rate_limited" if exc.kind == errors.RATE_LIMIT else "provider_key_rejected",
                               attempts=attempts, retry_after=exc.retry_after)


def _final_error(attempts):
    """503 listing every attempt; 504 when every attempt timed out; 502 when every one got a bad answer."""
    tried = [a for a in attempts if a.kind != "skipped"]
    summary = "; ".join(f"{a.model} via {a.provider}" + (f" ({a.key_id})" if a.key_id else "") + f": {a.error}"
                        for a in attempts) or "no candidate model is available"
    if tried and all(a.kind == errors.TIMEOUT for a in tried):
        status, code = 504, "upstream_timeout"
    elif tried and len(tried) == len(attempts) and all(a.kind == errors.TRANSIENT and a.status for a in tried):
        status, code = 502, "upstream_error"
    else:
        status, code = 503, "no_upstream_available"
    return errors.GatewayError(status, f"All upstream attempts failed: {summary}"[:2000], "server_error", code,
                               attempts=attempts)


class StreamSession:
    """A committed stream: iterate for OpenAI chunks; a later failure raises StreamInterrupted."""

    def __init__(self, model, attempts, chunks, close, include_usage, prompt_estimate=0):
        self.model = model
        self.prompt_estimate = prompt_estimate
        self.attempts = attempts
        self.usage = {}
        self.dropped = []
        self.completion_tokens = 0         # estimated from what was relayed, for a stream without usage
        self.finished = False
        self.interrupted = None
        self._chunks = chunks
        self._close = close
        self._include_usage = include_usage
        self._periodic = None              # (seconds, action, next due), see `every`

    def every(self, seconds, action):
        """Call `action` at most once per `seconds` while chunks keep coming (a stream's housekeeping)."""
        self._periodic = (seconds, action, time.monotonic() + seconds)

    def __iter__(self):
        try:
            for chunk in self._chunks:
                if chunk.get("usage"):
                    self.usage = chunk["usage"]
                self._observe(chunk)
                if self._periodic and time.monotonic() >= self._periodic[2]:
                    seconds, action, _ = self._periodic
                    self._periodic = (seconds, action, time.monotonic() + seconds)
                    action()
                if chunk.get("choices") or self._include_usage:
                    yield chunk
        except errors.UpstreamError as exc:
            self.interrupted = exc.message
            raise errors.StreamInterrupted(f"The upstream stream broke after it started: {exc.message}", exc.kind) from None
        finally:
            self.close()

    def close(self):
        """Hang up on the upstream (also when the client went away)."""
        close, self._close = self._close, None
        if close is not None:
            close()

    def produced_usage(self):
        """Usage to bill: the upstream's own figures, or an estimate of what it read and sent so far
        (an upstream bills the prompt of an abandoned stream too)."""
        if self.usage:
            return self.usage
        completion = self.completion_tokens
        return {"prompt_tokens": self.prompt_estimate, "completion_tokens": completion,
                "total_tokens": self.prompt_estimate + completion, "estimated": True}

    def _observe(self, chunk):
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            self.completion_tokens += estimate_text(delta.get("content") or "") + estimate_text(
                delta.get("reasoning_content") or "")
            for call in delta.get("tool_calls") or ():       # a tool call's name and arguments are output too
                function = call.get("function") or {}
                self.completion_tokens += estimate_text(function.get("name") or "") + estimate_text(
                    function.get("arguments") or "")
            if choice.get("finish_reason"):
                self.finished = True
