"""Which provider keys a request brings (seed 001's priority), and what failover did to them.

Priority per provider: the request header (`X-Google-API-Key`…) > the user's selected key >
the user's other usable keys > the operator's keys (appended by the router).
"""
from datetime import timedelta

from flask import current_app, request

from blueprints.provider_key_service import router_key
from extensions import db
from gateway import errors
from gateway.config import ProviderKey, header_safe
from models import UserProviderKey, activity_log
from models.provider_key import ACTIVE, INVALID
from models.user import utcnow

HEADER_KEY_ID = "header"


def request_keys(caller, candidates):
    """provider name -> [ProviderKey] to try before the operator's, for the candidate models."""
    providers = current_app.extensions["gateway"].settings.providers
    names = {m.provider for m in candidates}
    keys = {}
    for name in names:
        value = request.headers.get(providers[name].key_header, "").strip()
        if not header_safe(value):        # a WSGI server decodes headers as Latin-1; test clients need not
            raise errors.BadRequest(f"The {providers[name].key_header} header must be printable Latin-1 text.",
                                    param=providers[name].key_header, code="invalid_api_key")
        if value:
            keys[name] = [ProviderKey(HEADER_KEY_ID, value, exclusive=True)]
    if caller.has_provider_keys:
        vault = current_app.extensions["vault"]
        rows = db.session.scalars(db.select(UserProviderKey).where(
            UserProviderKey.user_id == caller.user_id, UserProviderKey.provider_name.in_(names))
            .order_by(UserProviderKey.is_selected.desc(), UserProviderKey.id)).all()
        now = utcnow()
        for row in rows:
            if row.usable(now):
                keys.setdefault(row.provider_name, []).append(router_key(row, vault.decrypt(row.ciphertext)))
    return keys


def apply_failover(user_id, attempts):
    """Persist what the router learnt about the user's keys, and log it where the owner sees it.

    401/403 → the key stays out until the owner fixes it; 429 → it cools down for Retry-After.
    A failing selected key is unselected and the next usable one selected, both logged.
    """
    failed = [a for a in attempts if (a.key_id or "").startswith("pk_") and a.kind in (errors.AUTH, errors.RATE_LIMIT)
              and a.status != 403]      # a 403 names a model the key may not use; the key itself is fine
    if not failed:
        return
    served = next((a.key_id for a in reversed(attempts) if a.status == 200 and (a.key_id or "").startswith("pk_")), None)
    cooldown = current_app.extensions["gateway"].settings.retry.key_cooldown_s
    for attempt in failed:
        key = db.session.get(UserProviderKey, int(attempt.key_id[3:]))
        if key is None or key.user_id != user_id:
            continue
        reason = f"{attempt.status}: {(attempt.error or 'upstream error')[:150]}"
        if attempt.kind == errors.AUTH:
            key.status, key.last_error = INVALID, reason
        else:
            seconds = attempt.retry_after if attempt.retry_after is not None else cooldown
            key.cooldown_until = max(key.cooldown_until or utcnow(), utcnow() + timedelta(seconds=seconds))
            key.last_error = reason
        if key.is_selected:
            key.is_selected = False
            activity_log.record(user_id, "UNSELECT", key.provider_name, key.id,
                                f"Key '{key.name}' unselected after {reason}")
            _select_next(user_id, key, served)
    db.session.commit()


def _select_next(user_id, failed_key, served_public_id):
    """Select the key that answered, or else the next usable key of the same provider."""
    candidates = db.session.scalars(db.select(UserProviderKey).where(
        UserProviderKey.user_id == user_id, UserProviderKey.provider_name == failed_key.provider_name,
        UserProviderKey.id != failed_key.id, UserProviderKey.status == ACTIVE).order_by(UserProviderKey.id)).all()
    chosen = next((k for k in candidates if k.public_id == served_public_id), None) or \
        next((k for k in candidates if k.usable()), None)
    if chosen is None:
        return
    chosen.is_selected = True
    activity_log.record(user_id, "SELECT", chosen.provider_name, chosen.id,
                        f"Key '{chosen.name}' selected by automatic failover from '{failed_key.name}'")

