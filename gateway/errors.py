"""The small error taxonomy that decides failover; the router is the only reader of `.kind`."""
import re

# Kinds of upstream failure, and what the router does with each:
REQUEST = "request"        # the request itself is wrong (400/404/413/422): answer at once, never retry
AUTH = "auth"              # 401/403 or quota exhausted: the key is bad, try the next key
RATE_LIMIT = "rate_limit"  # 429: cool the key down for Retry-After, try the next key
TRANSIENT = "transient"    # 5xx, connection error, invalid answer: retry with backoff, then fall back
TIMEOUT = "timeout"        # connect/read timeout: like TRANSIENT, but reported as 504 when all time out

_SECRET_PATTERN = re.compile(
    r"(sk-[A-Za-z0-9_\-]{6,}|AIza[A-Za-z0-9_\-]{10,}|xai-[A-Za-z0-9_\-]{6,}|"
    r"gsk_[A-Za-z0-9_\-]{6,}|Bearer\s+[A-Za-z0-9._\-]{6,})"
)


def redact(text):
    """Mask anything that looks like a credential, so upstream messages never leak keys."""
    return _SECRET_PATTERN.sub(lambda m: m.group(0)[:3] + "…[redacted]", text or "")


class GatewayError(Exception):
    """An error answered to the client; the API layers render it in their own shape."""

    def __init__(self, status, message, type_="invalid_request_error", code=None, param=None, attempts=(), extra=None,
                 retry_after=None):
        super().__init__(message)
        self.extra = extra or {}
        self.retry_after = retry_after      # seconds, sent as Retry-After
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.attempts = list(attempts)


class BadRequest(GatewayError):
    """The client's request is malformed (400)."""

    def __init__(self, message, param=None, code="invalid_request"):
        super().__init__(400, message, "invalid_request_error", code, param)


class ModelNotFound(GatewayError):
    """The requested model is not in the catalog (404)."""

    def __init__(self, model):
        super().__init__(404, f"The model '{model}' does not exist or you do not have access to it.",
                         "invalid_request_error", "model_not_found", "model")


class UpstreamError(Exception):
    """One failed attempt at an upstream, classified for the router."""

    def __init__(self, kind, message, status=None, retry_after=None, endpoint=False):
        """`endpoint`: the key's endpoint could not be reached at all (no connection, TLS), which
        says nothing about the model; every other failure is the model's (or the key's, by kind)."""
        super().__init__(message)
        self.kind = kind
        self.message = redact(message)[:500]
        self.status = status
        self.retry_after = retry_after
        self.endpoint = endpoint

    @property
    def retryable(self):
        return self.kind in (TRANSIENT, TIMEOUT)


def kind_for_status(status):
    """Map an upstream HTTP status onto the taxonomy."""
    if status in (401, 403):
        return AUTH
    if status == 429:
        return RATE_LIMIT
    if status in (400, 404, 413, 422):
        return REQUEST
    if status == 408:
        return TIMEOUT
    return TRANSIENT


def parse_retry_after(value):
    """Seconds from a Retry-After header (delta-seconds only; dates are rare upstream)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


class StreamInterrupted(Exception):
    """The committed stream broke after content reached the client; no fallback is possible."""

    def __init__(self, message, kind=TRANSIENT):
        super().__init__(message)
        self.message = redact(message)
        self.kind = kind
