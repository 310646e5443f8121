"""The account, key and billing APIs of seeds 002 and 004 (SPEC 2.4, 2.5), authenticated by API key.

Errors here use the `{"detail", "code", "error_type"}` family; quota figures use seed 002's
units (500,000 = 1 USD) and balances seed 004's credits (1 credit = 1 USD).
"""
from datetime import timezone

from flask import Blueprint, current_app, g, jsonify, request

from blueprints.api import read_json_body
from blueprints.api.detail import MAX_PAGE, detail_api, int_arg, managing
from extensions import db
from gateway import pricing
from gateway.errors import GatewayError
from models import ApiKey, CreditTransaction, RequestLog, User, redemption

bp = Blueprint("account_api", __name__)
MAX_QUOTA = pricing.MAX_CREDITS * pricing.QUOTA_PER_USD     # the most money the gateway handles, in quota units


detail_api(bp)


def owned_key(key_id):
    """The caller's key or 404 (another user's id is indistinguishable from a missing one)."""
    key = db.session.scalar(db.select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == g.caller.user_id))
    if key is None or key.status == "revoked":
        raise GatewayError(404, "API key not found.", code="not_found")
    return key


@bp.get("/billing/balance")
def balance():
    user = db.session.get(User, g.caller.user_id)
    return jsonify({"user_id": str(user.id), "balance": pricing.to_credits(user.balance)})


@bp.get("/billing/transactions")
def transactions():
    limit, offset = int_arg("limit", 10, 1, MAX_PAGE), int_arg("offset", 0, 0, 10**9)
    mine = CreditTransaction.user_id == g.caller.user_id
    total = db.session.scalar(db.select(db.func.count(CreditTransaction.id)).where(mine))
    rows = db.session.scalars(db.select(CreditTransaction).where(mine).order_by(CreditTransaction.id.desc())
                              .limit(limit).offset(offset))
    return jsonify({"user_id": str(g.caller.user_id), "limit": limit, "offset": offset, "total": total,
                    "transactions": [{"id": f"txn_{t.id}", "user_id": str(t.user_id),
                                      "amount": pricing.to_credits(t.amount), "description": t.description,
                                      "timestamp": t.created_at.isoformat() + "Z",
                                      "balance_after": pricing.to_credits(t.balance_after)} for t in rows]})


@bp.post("/billing/redeem")
def redeem_code():
    """Redeem a code once: `{"code"}` → the credits added and the new balance."""
    body = read_json_body()
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or not code.strip() or len(code) > 100:
        raise GatewayError(400, "'code' is required.", code="invalid_parameter")
    try:
        amount = redemption.redeem(code, g.caller.user_id)
    except redemption.CodeNotRedeemable:
        raise GatewayError(400, "This code does not exist or was already redeemed.", code="code_not_redeemable") from None
    user = db.session.get(User, g.caller.user_id)
    return jsonify({"user_id": str(user.id), "credits_added": pricing.to_credits(amount),
                    "balance": pricing.to_credits(user.balance)})


@bp.get("/api/models")
def models_catalog():
    """Seed 003's catalog: what this key may call, with prices (USD per million tokens, per request)."""
    gateway = current_app.extensions["gateway"]
    return jsonify({"models": [
        {"id": m.id, "provider": m.provider, "group": m.group, "kind": m.kind, "input_per_mtok": m.input_per_mtok,
         "output_per_mtok": m.output_per_mtok, "per_request": m.per_request}
        for m in gateway.catalog.visible(g.caller.model_limits)]})


@bp.get("/api/user")
def user_info():
    user = db.session.get(User, g.caller.user_id)
    used = int(db.session.scalar(db.select(db.func.coalesce(db.func.sum(-CreditTransaction.amount), 0))     # numeric
                                 .where(CreditTransaction.user_id == user.id, CreditTransaction.kind == "charge")))
    requests = db.session.scalar(db.select(db.func.count(RequestLog.id)).where(RequestLog.user_id == user.id))
    return jsonify({"display_name": user.username, "email": user.email or "", "username": user.username,
                    "role": user.role, "quota": pricing.to_quota(max(0, user.balance - user.reserved)),
                    "used_quota": pricing.to_quota(used), "request_count": requests})


@bp.get("/api/keys")
def list_keys():
    query = db.select(ApiKey).where(ApiKey.user_id == g.caller.user_id, ApiKey.status != "revoked")
    keyword = request.args.get("keyword", "").strip()
    if keyword:
        query = query.where(ApiKey.name.contains(keyword, autoescape=True))
    return jsonify({"data": [key_json(k) for k in db.session.scalars(query.order_by(ApiKey.id))]})


@bp.delete("/api/keys/<int:key_id>")
@managing
def revoke_key(key_id):
    owned_key(key_id).status = "revoked"
    db.session.commit()
    return jsonify({"success": True, "message": ""})


@bp.put("/api/keys/<int:key_id>/quota")
@managing
def set_quota(key_id):
    body = read_json_body()
    value = body.get("remain_quota") if isinstance(body, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_QUOTA:
        raise GatewayError(400, f"'remain_quota' must be an integer from 0 to {MAX_QUOTA:,} (500,000 = 1 USD).",
                           code="invalid_parameter")
    key = owned_key(key_id)
    key.remain_quota, key.unlimited_quota = pricing.from_quota(value), False
    db.session.commit()
    return jsonify({"success": True, "message": "", "data": key_json(key)})


def key_json(key):
    """Seed 002's key object; the key itself is masked (only its prefix and last 4 are known)."""
    def stamp(moment):
        return int(moment.replace(tzinfo=timezone.utc).timestamp()) if moment else -1

    return {"id": key.id, "key": key.masked, "name": key.name, "status": key.status, "group": key.group,
            "remain_quota": pricing.to_quota(key.remain_quota), "unlimited_quota": key.unlimited_quota,
            "used_quota": pricing.to_quota(key.used_quota), "created_time": stamp(key.created_at),
            "accessed_time": stamp(key.last_used_at), "expired_time": stamp(key.expires_at),
            "model_limits": ",".join(key.model_limits or []), "model_limits_enabled": bool(key.model_limits),
            "allow_ips": ",".join(key.allow_ips or []), "rpm": key.rpm}
