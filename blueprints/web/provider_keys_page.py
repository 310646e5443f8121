"""/provider-keys: a user's own provider keys (add, rename, select, test, delete) and their failover history.

The rules are blueprints/provider_key_service.py's, shared with /api/v1/provider-keys; this module
reads forms and picks the fragment to answer. Every change that writes an activity row answers
with the `provider-keys-changed` trigger, on which the history panel reloads itself.
"""
from itertools import groupby

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from htmx_flask import make_response as htmx_response

from blueprints import provider_key_service as service
from blueprints.web.security import protect
from extensions import db
from models import activity_log
from models.user import utcnow

bp = protect(Blueprint("provider_keys_page", __name__, url_prefix="/provider-keys"))
CHANGED = "provider-keys-changed"
HISTORY_ROWS = 50


@bp.before_request
@login_required
def require_login():
    """Every view here is the signed-in user's own keys."""


def owned_key(key_id):
    """The current user's key by `pk_…` id.

    :raise 404: unknown or someone else's key (the two look the same).
    """
    key = service.find_owned(current_user.id, key_id)
    if key is None:
        abort(404)
    return key


@bp.get("")
def index():
    return render_template("provider_keys/index.html", form={}, error=None, message=None, **_page_context())


@bp.get("/history")
def history():
    activity = service.recent_activity(current_user.id, HISTORY_ROWS)
    return render_template("provider_keys/_history.html", activity=activity)


@bp.post("")
def create():
    form = {name: request.form.get(name, "").strip() for name in ("provider_name", "name", "base_url")}
    try:
        key = service.create(current_user.id, form["provider_name"], request.form.get("api_key", ""),
                             form["name"] or None, form["base_url"] or None)
    except service.KeyInputError as exc:
        db.session.rollback()
        # The key the user typed is never sent back, not even into the form they must correct.
        template = "provider_keys/_add_form.html" if request.htmx else "provider_keys/index.html"
        return render_template(template, form=form, error=exc.message, message=None, **_page_context()), 422
    db.session.commit()
    message = f"Key “{key.name}” added for {key.provider_name}."
    if request.htmx:                    # the next key is most likely for the same provider: keep it chosen
        return htmx_response(render_template("provider_keys/_created.html", form={"provider_name": key.provider_name},
                                             error=None, message=message, **_page_context()), trigger=CHANGED)
    flash(message, "success")
    return redirect(url_for("provider_keys_page.index"))


@bp.post("/<key_id>")
def rename(key_id):
    key = owned_key(key_id)
    try:
        service.rename(key, request.form.get("name"))
    except service.KeyInputError as exc:
        db.session.rollback()
        return _card(key, error=exc.message, typed_name=request.form.get("name", ""), status=422)
    db.session.commit()
    return _card(key, message="Renamed.")


@bp.post("/<key_id>/select")
def select(key_id):
    """Select (or, with selected=0, unselect) a key; the provider's other keys are unselected."""
    key = owned_key(key_id)
    selected = request.form.get("selected", "1") == "1"
    service.select(key, selected)
    db.session.commit()
    return _list(f"“{key.name}” is now the selected {key.provider_name} key." if selected
                 else f"“{key.name}” is no longer selected.")


@bp.post("/<key_id>/test")
def test(key_id):
    """One cheap real call with this key; the card then says OK or the failure's class, and the
    history keeps a TEST row so the outcome is still there after a reload."""
    key = owned_key(key_id)
    was_out = not key.usable()
    result = service.try_key(key)
    activity_log.record(current_user.id, "TEST", key.provider_name, key.id,
                        f"Tested key '{key.name}': {result.summary}")
    db.session.commit()
    if result.ok and was_out:
        return _card(key, message=f"{result.summary} The key is back in rotation.", logged=True)
    return _card(key, message=result.summary if result.ok else None, error=None if result.ok else result.summary,
                 logged=True)


@bp.post("/<key_id>/delete")
def delete(key_id):
    key = owned_key(key_id)
    name = key.name
    service.delete(key)
    db.session.commit()
    return _list(f"Key “{name}” deleted.")


def _page_context():
    keys = service.keys_of(current_user.id)
    return {"groups": _grouped(keys), "providers": service.provider_names(), "now": utcnow(),
            "activity": service.recent_activity(current_user.id, HISTORY_ROWS)}


def _grouped(keys):
    """[(provider, [keys…])], providers in name order, keys oldest first."""
    ordered = sorted(keys, key=lambda k: (k.provider_name, k.id))
    return [(provider, list(members)) for provider, members in groupby(ordered, key=lambda k: k.provider_name)]


def _list(message):
    """After a change that touches several keys: the whole list (htmx) or back to the page."""
    if request.htmx:
        return htmx_response(render_template("provider_keys/_keys.html", message=message, **_page_context()),
                             trigger=CHANGED)
    flash(message, "success")
    return redirect(url_for("provider_keys_page.index"))


def _card(key, message=None, error=None, typed_name=None, status=200, logged=False):
    """One key's card for an htmx swap (`typed_name`: a refused rename, shown again in its open editor;
    `logged`: an activity row was written, so the history reloads), or back to the page for a plain post."""
    if request.htmx:
        return htmx_response(render_template("provider_keys/_key.html", key=key, message=message, error=error,
                                             typed_name=typed_name, now=utcnow()), status,
                             trigger=CHANGED if logged else None)
    flash(error or message, "error" if error else "success")
    return redirect(url_for("provider_keys_page.index"))
