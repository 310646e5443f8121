"""One cheap real call with one key (a 1-token completion), to tell a user whether their key works.

It goes straight to the provider's adapter, past the router: no fallback to another key or model,
no retries, no circuit breaker, because the question is about this key alone. The verdict says
only OK or the failure's class (the taxonomy in gateway/errors.py) and its HTTP status: never the
upstream's message, which may quote the key back.
"""
import time
from dataclasses import dataclass

from gateway import errors, ssrf
from gateway.providers.base import Target

PROBE_BODY = {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
MAX_WAIT_S = 20.0

# What each failure class means to the key's owner, in words that quote nothing from upstream.
VERDICTS = {
    errors.AUTH: "the provider rejected this key (invalid, revoked, or out of quota)",
    errors.RATE_LIMIT: "the provider is rate-limiting this key; try again later",
    errors.REQUEST: "the provider refused the test request (the model name or base URL may be wrong)",
    errors.TRANSIENT: "the provider could not be reached or answered with an error",
    errors.TIMEOUT: "the provider did not answer in time",
    "unsafe_url": "the key's base URL is refused by the SSRF guard",
    "disabled": "the operator has switched this provider off or removed it",
    "no_model": "no chat model of this provider is configured, so there is nothing to call",
}


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    kind: str | None = None          # a failure class: errors.AUTH, errors.RATE_LIMIT, …
    status: int | None = None        # the upstream's HTTP status, when there was one
    model: str | None = None
    latency_ms: float = 0.0

    @property
    def summary(self):
        if self.ok:
            return f"OK: {self.model} answered in {self.latency_ms:.0f} ms."
        status = f", HTTP {self.status}" if self.status else ""
        return f"Failed ({self.kind}{status}): {VERDICTS.get(self.kind, 'the call failed')}."


def probe_key(gateway, provider_name, key, clock=time.monotonic):
    """Call the provider's first configured chat model once with `key` (a ProviderKey; its own base URL, if any).

    `key.id` must be the key's real label (`pk_…`): adapters cache per key id (GigaChat's tokens),
    so a shared label would let one key's test borrow another's token.
    """
    settings = gateway.settings
    provider = settings.providers.get(provider_name)
    if provider is None or not provider.enabled:
        return ProbeResult(False, "disabled")
    model = next((m for m in settings.models.values() if m.provider == provider_name and m.kind == "chat"), None)
    if model is None:
        return ProbeResult(False, "no_model")
    if key.base_url:
        try:
            ssrf.check_url(key.base_url, settings.user_url_allowlist)      # checked again at call time
        except ssrf.UnsafeURL:
            return ProbeResult(False, "unsafe_url", model=model.id)
    target = Target(provider, model, key)
    wait = min(settings.routing.request_timeout_s, MAX_WAIT_S)
    started = clock()
    try:       # the deadline bounds the whole answer: a byte-at-a-time upstream cannot hold the page
        gateway.adapters[provider.type].complete(target, PROBE_BODY, (settings.routing.connect_timeout_s, wait),
                                                 deadline=time.monotonic() + wait)
    except errors.UpstreamError as exc:
        return ProbeResult(False, exc.kind, exc.status, model.id, (clock() - started) * 1000)
    return ProbeResult(True, model=model.id, latency_ms=(clock() - started) * 1000)
