"""API-key and JWT authentication shared by every programmatic route (never the browser session)."""
import hmac
import ipaddress
import re
import time
from dataclasses import dataclass

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app, has_app_context, request

from blueprints.throttling import count
from extensions import execute_core
from gateway.errors import GatewayError
from models import ApiKey, User, UserProviderKey
from models.api_key import hash_key, looks_like_key
from models.user import utcnow


JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")    # header.payload.signature


@dataclass(frozen=True)
class Caller:
    """Plain values about the authenticated key, safe to carry into a streaming generator.

    A JWT caller is its user with no key: `key_id` None, no model, IP or quota limits of a key (so
    it may manage the user's keys), no key rate limit; the user's balance and `[limits]` still apply.
    """
    user_id: int
    key_id: int | None
    model_limits: tuple
    allow_ips: tuple
    key_limited: bool = False      # the key has its own quota (not unlimited)
    price_group: str = "default"
    has_provider_keys: bool = False
    rpm: int | None = None         # the key's own requests per minute (None: the configured default)

    def may_use(self, model_id):
        return not self.model_limits or model_id in self.model_limits

    @property
    def may_manage(self):
        """Only a key without limits of its own acts for its owner in managing keys: a capped key
        could otherwise lift its own cap, or a model-limited one add provider keys."""
        return not self.key_limited and not self.model_limits


def require_manager(caller):
    """:raise GatewayError: 403 for a key that may not manage its owner's keys."""
    if not caller.may_manage:
        raise GatewayError(403, "This API key has its own quota or model limits, so it may not manage keys: "
                                "use the owner's session or a key without limits.", "permission_error",
                           "key_management_not_allowed")


def is_admin(caller):
    return execute_core(_ROLE, {"id": caller.user_id}).scalar() == "admin"


def require_operator():
    """Let the operator's METRICS_TOKEN or an admin's API key (or JWT) through: /metrics and the
    detailed health family.

    :raise GatewayError: 401 without a valid token or key (as `authenticate`), 403 for a non-admin.
    """
    token = current_app.config["METRICS_TOKEN"]
    if token and hmac.compare_digest(presented_key().encode(), token.encode()):
        return
    if not is_admin(authenticate()):
        raise GatewayError(403, "Only an administrator's API key or the METRICS_TOKEN may read this.",
                           "permission_error", "admin_required")


def presented_key():
    """The key from `Authorization: Bearer` or `x-api-key` (what the Anthropic SDK sends)."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key", "").strip()


def authenticate():
    """Look the key up by hash, or verify a JWT when JWT_SECRET is set and the bearer has a JWT's
    shape; answer 401 for anything missing, malformed, unknown, revoked or expired; then count the
    request against the key's, the user's and the global rate limit.

    :raise GatewayError: 401, 403 when the caller's IP is not in the key's allow-list, 429 past a
        rate limit (before any upstream call, hold or ledger row).
    """
    raw = presented_key()
    if not raw:
        raise GatewayError(401, "Missing API key: send 'Authorization: Bearer sk-…' or 'x-api-key'.",
                           "invalid_request_error", "missing_api_key")
    secret = current_app.config["JWT_SECRET"]
    caller = _token_caller(raw, secret) if secret and JWT_SHAPE.fullmatch(raw) else _key_caller(raw)
    _count_request(caller)
    return caller


def _key_caller(raw):
    """:raise GatewayError: 401 for an unknown, revoked or expired key; 403 from an IP outside its allow-list."""
    row = _key_row(hash_key(raw)) if looks_like_key(raw) else None
    if row is None or row.status != "active" or row.disabled or (row.expires_at and row.expires_at <= utcnow()):
        raise GatewayError(401, "Incorrect, revoked or expired API key.", "invalid_request_error", "invalid_api_key")
    caller = Caller(row.user_id, row.id, tuple(row.model_limits or ()), tuple(row.allow_ips or ()),
                    not row.unlimited_quota, row.group, row.has_provider_keys, row.rpm)
    if caller.allow_ips and not _ip_allowed(request.remote_addr, caller.allow_ips):
        raise GatewayError(403, "This API key may not be used from this IP address.", "permission_error", "ip_not_allowed")
    return caller


def _key_row(key_hash):
    """The key's row (with its user's `disabled`), from this worker's cache when read less than
    KEY_CACHE_TTL_S ago: a revoked or disabled key, or a disabled user, is refused by every worker
    and instance within that time, and at once by the worker that made the change (`_forget_changed_keys`).

    Only found keys are kept (a stream of made-up keys cannot grow the cache), and expiry is
    checked on every use by the caller, so the cache never extends an `expires_at`.
    """
    cache = current_app.extensions.setdefault("key_rows", {})
    now = time.monotonic()
    cached = cache.get(key_hash)
    if cached is not None and now - cached[1] < KEY_CACHE_TTL_S:
        return cached[0]
    row = execute_core(_KEY_LOOKUP, {"hash": key_hash}).first()
    if row is not None:
        if len(cache) >= KEY_CACHE_SIZE:
            cache.clear()
        cache[key_hash] = (row, now)
    return row


@sa.event.listens_for(so.Session, "after_flush")
def _forget_changed_keys(session, _flush_context):
    """A change to a key, a user or a user's provider keys made through this worker's ORM (the web
    pages, the account API, the CLI) empties its key cache, so that its next request reads it anew."""
    changed = session.dirty | session.deleted | session.new
    if has_app_context() and any(isinstance(row, (ApiKey, User, UserProviderKey)) for row in changed):
        current_app.extensions.pop("key_rows", None)


def _token_caller(raw, secret):
    """The user a JWT names: HS256 only (never `none`, never a key-confusion RS256), `exp` and `sub` required,
    `sub` a username or a user id.

    :raise GatewayError: 401 for a bad signature, another algorithm, an expired token, a missing claim,
        or a subject that is no enabled user (the reason is not told beyond "expired").
    """
    import jwt      # here, not at the top: a worker that never sees a token does not load PyJWT (2 MiB)

    try:
        claims = jwt.decode(raw, secret, algorithms=["HS256"],
                            options={"require": ["exp", "sub"], "verify_sub": False})   # an integer id is fine too
    except jwt.ExpiredSignatureError:
        raise GatewayError(401, "The token has expired.", "invalid_request_error", "token_expired") from None
    except jwt.InvalidTokenError:
        claims = None
    row = _subject_user(claims["sub"]) if claims else None
    if row is None or row.disabled:
        raise GatewayError(401, "Invalid token.", "invalid_request_error", "invalid_token")
    return Caller(row.id, None, (), (), has_provider_keys=row.has_provider_keys, rpm=0)   # rpm 0: no key limit


def _subject_user(subject):
    """The user a token's `sub` names: a username first, else digits (or an integer) as a user id."""
    if isinstance(subject, bool) or not isinstance(subject, (str, int)):
        return None
    subject = str(subject)
    row = execute_core(_USER_BY_NAME, {"name": subject}).first()
    if row is None and subject.isascii() and subject.isdigit() and len(subject) <= 18:
        row = execute_core(_USER_BY_ID, {"id": int(subject)}).first()
    return row


KEY_CACHE_TTL_S = 1.0       # how long a revoked key may still pass in another worker or instance
KEY_CACHE_SIZE = 10_000     # keys per worker; past it the cache starts over
_LIMIT_OWNERS = {"key": "this API key's", "user": "your account's", "global": "the gateway's"}


def _count_request(caller):
    """:raise GatewayError: 429 with Retry-After once a limit is used up (a refused request is not counted)."""
    window = count(current_app.extensions["rate_limits"].for_key(caller.user_id, caller.key_id, caller.rpm))
    if window is not None and not window.allowed:
        wait = window.reset_in()
        raise GatewayError(429, f"Rate limit reached: {_LIMIT_OWNERS[window.scope]} limit is {window.rate}; "
                                f"try again in {wait} seconds.", "rate_limit_error", "rate_limit_exceeded",
                           retry_after=wait)


_KEY_LOOKUP = (sa.select(ApiKey.id, ApiKey.user_id, ApiKey.status, ApiKey.expires_at, ApiKey.model_limits,
                         ApiKey.allow_ips, ApiKey.unlimited_quota, ApiKey.group, ApiKey.rpm, User.disabled,
                         sa.exists().where(UserProviderKey.user_id == ApiKey.user_id).label("has_provider_keys"))
               .join(User, User.id == ApiKey.user_id).where(ApiKey.key_hash == sa.bindparam("hash")))
_ROLE = sa.select(User.role).where(User.id == sa.bindparam("id"))
_USER = sa.select(User.id, User.disabled, sa.exists().where(UserProviderKey.user_id == User.id).label("has_provider_keys"))
_USER_BY_NAME = _USER.where(User.username == sa.bindparam("name"))
_USER_BY_ID = _USER.where(User.id == sa.bindparam("id"))


def _ip_allowed(address, networks):
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)
