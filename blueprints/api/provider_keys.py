"""Seed 001's provider-key API and activity log: a user's own keys, encrypted, one selected per provider."""
from flask import Blueprint, current_app, g, jsonify, request

from blueprints.api.detail import detail_api, int_arg
from extensions import db
from gateway import ssrf
from gateway.errors import GatewayError
from models import ActivityLog, UserProviderKey, activity_log
from models.provider_key import ACTIVE, parse_public_id

bp = Blueprint("provider_keys", __name__, url_prefix="/api/v1")
detail_api(bp)


@bp.post("/provider-keys")
@bp.post("/provider-keys/")
def create_key():
    body = _json_object()
    provider = _provider_name(body.get("provider_name"))
    secret = body.get("api_key")
    if not isinstance(secret, str) or not secret.strip() or len(secret) > 4096:
        raise GatewayError(400, "'api_key' is required.", code="invalid_parameter")
    name = _name(body.get("name") or f"{provider} key")
    key = UserProviderKey(user_id=g.caller.user_id, provider_name=provider, name=name, last4=secret.strip()[-4:],
                          ciphertext=current_app.extensions["vault"].encrypt(secret.strip()),
                          base_url=_base_url(body.get("base_url")))
    db.session.add(key)
    db.session.flush()
    activity_log.record(g.caller.user_id, "ADD", provider, key.id, f"Added key '{name}' for {provider}")
    db.session.commit()
    return jsonify(key.as_json()), 201


@bp.get("/provider-keys")
@bp.get("/provider-keys/")
def list_keys():
    query = db.select(UserProviderKey).where(UserProviderKey.user_id == g.caller.user_id)
    if request.args.get("provider"):
        query = query.where(UserProviderKey.provider_name == request.args["provider"])
    return jsonify([k.as_json() for k in db.session.scalars(query.order_by(UserProviderKey.id))])


@bp.get("/provider-keys/<key_id>")
def get_key(key_id):
    return jsonify(owned(key_id).as_json())


@bp.patch("/provider-keys/<key_id>")
def update_key(key_id):
    key, body = owned(key_id), _json_object()
    if "name" in body:
        key.name = _name(body["name"])
    if "api_key" in body:                      # replacing the secret is how an invalid key is fixed
        secret = body["api_key"]
        if not isinstance(secret, str) or not secret.strip():
            raise GatewayError(400, "'api_key' must be a non-empty string.", code="invalid_parameter")
        key.ciphertext, key.last4 = current_app.extensions["vault"].encrypt(secret.strip()), secret.strip()[-4:]
        key.status, key.cooldown_until, key.last_error = ACTIVE, None, None
    if "is_selected" in body:
        if not isinstance(body["is_selected"], bool):
            raise GatewayError(400, "'is_selected' must be true or false.", code="invalid_parameter")
        select(key, body["is_selected"])
    db.session.commit()
    return jsonify(key.as_json())


@bp.delete("/provider-keys/<key_id>")
def delete_key(key_id):
    key = owned(key_id)
    activity_log.record(g.caller.user_id, "DELETE", key.provider_name, key.id, f"Deleted key '{key.name}'")
    db.session.delete(key)
    db.session.commit()
    return "", 204


@bp.delete("/provider-keys")
@bp.delete("/provider-keys/")
def delete_provider_keys():
    provider = _provider_name(request.args.get("provider_name"))
    keys = db.session.scalars(db.select(UserProviderKey).where(UserProviderKey.user_id == g.caller.user_id,
                                                               UserProviderKey.provider_name == provider)).all()
    for key in keys:
        activity_log.record(g.caller.user_id, "DELETE", provider, key.id, f"Deleted key '{key.name}'")
        db.session.delete(key)
    db.session.commit()
    return "", 204


@bp.get("/activity-logs")
def activity_logs():
    limit = int_arg("limit", 50, 1, 500)
    rows = db.session.scalars(db.select(ActivityLog).where(ActivityLog.user_id == g.caller.user_id)
                              .order_by(ActivityLog.id.desc()).limit(limit))
    return jsonify([row.as_json() for row in rows])


def owned(public_id):
    """The caller's key by `pk_…` id, or 404 (another user's id looks exactly like a missing one)."""
    key_id = parse_public_id(public_id)
    key = db.session.get(UserProviderKey, key_id) if key_id else None
    if key is None or key.user_id != g.caller.user_id:
        raise GatewayError(404, "Provider key not found.", code="not_found")
    return key


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


def _json_object():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise GatewayError(400, "The request body must be a JSON object.", code="invalid_json")
    return body


def _provider_name(value):
    providers = [name for name, p in current_app.extensions["gateway"].settings.providers.items() if p.type != "demo"]
    if value not in providers:
        raise GatewayError(400, f"'provider_name' must be one of: {', '.join(providers) or 'no provider is configured'}.",
                           code="invalid_parameter")
    return value


def _name(value):
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        raise GatewayError(400, "'name' must be a string of 1 to 100 characters.", code="invalid_parameter")
    return value.strip()


def _base_url(value):
    """A user's own endpoint must pass the SSRF guard when saved (and again at call time)."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) > 500:
        raise GatewayError(400, "'base_url' must be a URL.", code="invalid_parameter")
    try:
        ssrf.check_url(value, current_app.extensions["gateway"].settings.user_url_allowlist)
    except ssrf.UnsafeURL as exc:
        raise GatewayError(400, f"'base_url' refused: {exc}", code="unsafe_url") from None
    return value.rstrip("/")
