"""/admin/codes: create batches of redemption codes (an amount or a seed-003 package) and list the batches.

Only a code's hash is stored, so the raw codes exist in the one response that creates them (sent
with Cache-Control: no-store); the list shows batches (count, redeemed, value), never a code.
"""
import sqlalchemy as sa
from flask import render_template, request
from flask_login import current_user
from htmx_flask import make_response as htmx_response

from blueprints.web import credit_forms
from blueprints.web.admin import bp
from blueprints.web.key_forms import FormError
from extensions import db
from models import RedemptionCode, redemption

NO_STORE = {"Cache-Control": "no-store"}
MAX_BATCHES = 100


def batches(limit=MAX_BATCHES):
    """One row per (label, value), newest first: how many codes, how many redeemed."""
    code = RedemptionCode
    return db.session.execute(
        sa.select(code.batch, code.amount, sa.func.count(code.id).label("count"),
                  sa.func.count(code.redeemed_by).label("redeemed"), sa.func.max(code.created_at).label("created_at"))
        .group_by(code.batch, code.amount).order_by(sa.func.max(code.created_at).desc()).limit(limit)).all()


@bp.get("/codes")
def codes():
    if request.htmx:                    # the batch list refreshing itself after a batch is created
        return render_template("admin/_batch_rows.html", batches=batches())
    return _page()


@bp.post("/codes")
def codes_create():
    """Create the batch and show its codes this once."""
    try:
        amount, count, label = credit_forms.code_batch(request.form)
    except FormError as exc:
        if request.htmx:
            return render_template("admin/_codes_created.html", error=str(exc)), 422
        return _page(error=str(exc)), 422
    raws = RedemptionCode.create_batch(amount, count, label, created_by=current_user.id)
    db.session.commit()
    created = {"raws": raws, "amount": amount, "label": label}
    if request.htmx:
        return htmx_response(render_template("admin/_codes_created.html", **created), 200, NO_STORE,
                             trigger="codes-created")
    return _page(**created), 200, NO_STORE


def _page(**created):
    return render_template("admin/codes.html", batches=batches(), packages=redemption.packages(),
                           form=request.form, **created)
