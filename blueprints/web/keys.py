"""The /keys page: create (shown once), list masked, rename, limit, disable/enable, revoke."""
import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from htmx_flask import make_response as htmx_response

from blueprints.web import key_forms
from blueprints.web.security import protect
from extensions import db
from models import ApiKey, User

bp = protect(Blueprint("keys", __name__, url_prefix="/keys"))
NO_STORE = {"Cache-Control": "no-store"}


@bp.before_request
@login_required
def require_login():
    """Every view here is the signed-in user's own keys."""


def owned_key(key_id):
    """The current user's live key, else 404 (another user's id looks exactly like a missing one).

    :raise 404: unknown, revoked or someone else's key.
    """
    key = db.session.scalar(sa.select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == current_user.id,
                                                    ApiKey.status != "revoked"))
    if key is None:
        abort(404)
    return key


def create_key(name):
    """Issue a key for the current user; returns (row, raw) — the raw key exists only in this response."""
    row, raw = ApiKey.issue(db.session.get(User, current_user.id), key_forms.key_name(name))
    db.session.commit()
    return row, raw


def catalog_models():
    return [m.id for m in current_app.extensions["gateway"].catalog.visible()]


@bp.get("")
def index():
    return render_template("keys/index.html", keys=_live_keys(), created=None, raw_key=None, error=None,
                           **_card_context())


@bp.post("")
def create():
    try:
        row, raw = create_key(request.form.get("name"))
    except key_forms.FormError as exc:
        if request.htmx:
            return render_template("keys/_created.html", error=str(exc)), 422
        return render_template("keys/index.html", keys=_live_keys(), created=None, raw_key=None, error=str(exc),
                               **_card_context()), 422
    if request.htmx:
        return render_template("keys/_created.html", created=row, raw_key=raw, **_card_context()), 200, NO_STORE
    return render_template("keys/index.html", keys=_live_keys(), created=row, raw_key=raw, error=None,
                           **_card_context()), 200, NO_STORE


@bp.post("/<int:key_id>")
def update(key_id):
    """Rename and set expiry, requests per minute, model and IP allow-lists in one form; errors re-render the card."""
    key = owned_key(key_id)
    form = request.form
    try:
        values = {"name": key_forms.key_name(form.get("name")), "expires_at": key_forms.expiry(form.get("expires_on")),
                  "rpm": key_forms.rpm(form.get("rpm")),
                  "model_limits": key_forms.model_limits(form.getlist("models"), set(catalog_models())),
                  "allow_ips": key_forms.allow_ips(form.get("allow_ips"))}
    except key_forms.FormError as exc:
        db.session.rollback()
        return _card(key, error=str(exc), typed=key_forms.editor_values(key, form), status=422)
    for field, value in values.items():
        setattr(key, field, value)
    db.session.commit()
    return _card(key, message="Saved.")


@bp.post("/<int:key_id>/toggle")
def toggle(key_id):
    key = owned_key(key_id)
    key.status = "disabled" if key.status == "active" else "active"
    db.session.commit()
    return _card(key, message="Disabled: requests with this key now get 401." if key.status == "disabled"
                 else "Enabled again.")


@bp.post("/<int:key_id>/revoke")
def revoke(key_id):
    """Revoked keys are refused at once and disappear from the list; there is no undo."""
    key = owned_key(key_id)
    key.status = "revoked"
    db.session.commit()
    if request.htmx:
        return htmx_response("", trigger="key-revoked")
    flash(f"Key “{key.name}” revoked.", "success")
    return redirect(url_for("keys.index"))


def _card_context():
    return {"models": catalog_models(), "expiry_value": key_forms.expiry_value,
            "editor_values": key_forms.editor_values, "max_rpm": key_forms.MAX_RPM}


def _live_keys():
    return db.session.scalars(sa.select(ApiKey).where(ApiKey.user_id == current_user.id, ApiKey.status != "revoked")
                              .order_by(ApiKey.id.desc())).all()


def _card(key, message=None, error=None, typed=None, status=200):
    """The key's card for an htmx swap, or the page for a plain form post; `typed` (a refused save's
    fields) reopens the editor with them."""
    if request.htmx:
        return render_template("keys/_key.html", key=key, message=message, error=error, typed=typed,
                               **_card_context()), status
    if typed is not None:
        return render_template("keys/index.html", keys=_live_keys(), created=None, raw_key=None, error=None,
                               edited={"id": key.id, "error": error, "typed": typed}, **_card_context()), status
    flash(error or message, "error" if error else "success")
    return redirect(url_for("keys.index"))
