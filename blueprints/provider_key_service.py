"""What can be done to a user's own provider keys, shared by the JSON API and the /provider-keys page.

Both front ends validate, encrypt and log through these functions, so the rules (which providers,
the SSRF check on a user's base URL, one selected key per provider, an activity row for every
change) cannot drift apart. Nothing here commits: the caller ends the transaction once, after
its last change. Errors are GatewayErrors: the API renders them as JSON, the page as a message.
"""
from dataclasses import replace

from flask import current_app

from extensions import db
from gateway import probe, ssrf
from gateway.config import ProviderKey, header_safe
from gateway.errors import GatewayError
from models import ActivityLog, UserProviderKey, activity_log
from models.provider_key import ACTIVE, parse_public_id

MAX_NAME = 100
MAX_SECRET = 4096
MAX_URL = 500


class KeyInputError(GatewayError):
    """A field the user got wrong; the message names it (400 from the API, 422 on the page)."""

    def __init__(self, message, code="invalid_parameter"):
        super().__init__(400, message, code=code)


# --- reading -----------------------------------------------------------------------------------
def provider_names():
    """The configured providers a user may bring a key for (the keyless demo is not one)."""
    return [name for name, p in current_app.extensions["gateway"].settings.providers.items() if p.type != "demo"]


def find_owned(user_id, public_id):
    """The user's key by `pk_…` id, or None: another user's id looks exactly like a missing one."""
    key_id = parse_public_id(public_id)
    key = db.session.get(UserProviderKey, key_id) if key_id else None
    return key if key is not None and key.user_id == user_id else None


def keys_of(user_id, provider=None):
    """The user's keys (of one provider, if given), oldest first."""
    query = db.select(UserProviderKey).where(UserProviderKey.user_id == user_id)
    if provider:
        query = query.where(UserProviderKey.provider_name == provider)
    return db.session.scalars(query.order_by(UserProviderKey.id)).all()


def recent_activity(user_id, limit=50):
    """The user's activity log, newest first."""
    return db.session.scalars(db.select(ActivityLog).where(ActivityLog.user_id == user_id)
                              .order_by(ActivityLog.id.desc()).limit(limit)).all()


# --- changing --------------------------------------------------------------------------------
def create(user_id, provider_name, secret, name=None, base_url=None):
    """Validate, encrypt and store a new key, and log ADD.

    :raise KeyInputError: a field is missing or wrong (the base URL fails the SSRF guard, say).
    """
    provider = check_provider(provider_name)
    secret = check_secret(secret, "'api_key' is required.")
    name = check_name(name or f"{provider} key")
    key = UserProviderKey(user_id=user_id, provider_name=provider, name=name, last4=secret[-4:],
                          ciphertext=current_app.extensions["vault"].encrypt(secret), base_url=check_base_url(base_url))
    db.session.add(key)
    db.session.flush()
    activity_log.record(user_id, "ADD", provider, key.id, f"Added key '{name}' for {provider}")
    return key


def rename(key, name):
    key.name = check_name(name)


def replace_secret(key, secret):
    """A new secret is how an invalid key is fixed: it starts afresh, active and not cooling down."""
    secret = check_secret(secret, "'api_key' must be a non-empty string.")
    key.ciphertext, key.last4 = current_app.extensions["vault"].encrypt(secret), secret[-4:]
    _back_in_rotation(key)


def select(key, selected):
    """Selecting a key unselects the owner's other keys for that provider; both are logged."""
    if selected and not key.is_selected:
        others = db.session.scalars(db.select(UserProviderKey).where(
            UserProviderKey.user_id == key.user_id, UserProviderKey.provider_name == key.provider_name,
            UserProviderKey.is_selected.is_(True), UserProviderKey.id != key.id)).all()
        for other in others:
            other.is_selected = False
            activity_log.record(key.user_id, "UNSELECT", other.provider_name, other.id,
                                f"Key '{other.name}' unselected: '{key.name}' was selected")
        activity_log.record(key.user_id, "SELECT", key.provider_name, key.id, f"Key '{key.name}' selected")
    elif not selected and key.is_selected:
        activity_log.record(key.user_id, "UNSELECT", key.provider_name, key.id, f"Key '{key.name}' unselected")
    key.is_selected = selected


def delete(key):
    """Remove the key and log DELETE (the log keeps its name; the secret goes with the row)."""
    activity_log.record(key.user_id, "DELETE", key.provider_name, key.id, f"Deleted key '{key.name}'")
    db.session.delete(key)


def delete_provider(user_id, provider_name):
    """Remove all of the user's keys for one provider, each logged."""
    for key in keys_of(user_id, check_provider(provider_name)):
        delete(key)


def try_key(key):
    """Make one cheap real call with the key and return the probe's verdict.

    A key that passes is put back into rotation (an invalid or cooling key that works again
    would otherwise stay out until replaced); a failing test changes nothing, since the router
    already handles failures of real traffic.
    """
    routed = router_key(key, current_app.extensions["vault"].decrypt(key.ciphertext))
    result = probe.probe_key(current_app.extensions["gateway"], key.provider_name, routed)
    if result.ok:
        _back_in_rotation(key, routed)
    return result


def router_key(row, secret):
    """A user's stored key as the router sees it: its health is the owner's alone, and named by what
    the key is (owner, secret, endpoint), never by a database id that a later key may reuse."""
    key = ProviderKey(row.public_id, secret, row.base_url)
    return replace(key, scope=f"user:{row.user_id}:{key.fingerprint}")


def _back_in_rotation(key, routed):
    """Clear what failover recorded, in the database and in this worker's router, which otherwise
    keeps skipping a key it saw fail with 401 until the process restarts."""
    key.status, key.cooldown_until, key.last_error = ACTIVE, None, None
    current_app.extensions["gateway"].router.key_health.restore(routed.scope)


# --- validation ------------------------------------------------------------------------------
def check_provider(value):
    providers = provider_names()
    if value not in providers:
        raise KeyInputError(f"'provider_name' must be one of: {', '.join(providers) or 'no provider is configured'}.")
    return value


def check_name(value):
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
        raise KeyInputError(f"'name' must be a string of 1 to {MAX_NAME} characters.")
    return value.strip()


def check_secret(value, missing_message):
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_SECRET:
        raise KeyInputError(missing_message)
    if not header_safe(value.strip()):        # it is sent in an HTTP header, which carries Latin-1 only
        raise KeyInputError("'api_key' has characters an HTTP header cannot carry: a provider key is printable "
                            "Latin-1 text (no Cyrillic, no line breaks or other control characters).")
    return value.strip()


def check_base_url(value):
    """A user's own endpoint must pass the SSRF guard when saved (and again at call time)."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) > MAX_URL:
        raise KeyInputError("'base_url' must be a URL.")
    try:
        ssrf.check_url(value, current_app.extensions["gateway"].settings.user_url_allowlist)
    except ssrf.UnsafeURL as exc:
        raise KeyInputError(f"'base_url' refused: {exc}", code="unsafe_url") from None
    return value.rstrip("/")
