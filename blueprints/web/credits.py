"""/credits: the signed-in user's balance, ledger, seed 003's packages, and redeeming a code.

A view that changes a balance answers with the htmx `credits-changed` trigger. The nav badge, the
balance card and the ledger each listen for it (`hx-trigger="credits-changed from:body"`) and
fetch themselves again, so no view has to know which fragments the page shows.
"""
import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from htmx_flask import make_response as htmx_response

from blueprints.web import credit_forms
from blueprints.web.key_forms import FormError
from blueprints.web.security import protect
from extensions import db
from gateway import pricing
from models import CreditTransaction, redemption

bp = protect(Blueprint("credits", __name__, url_prefix="/credits"))
PAGE_SIZE = 25
NOT_REDEEMABLE = "This code does not exist or was already redeemed. Nothing was added; check the code and try again."


@bp.before_request
@login_required
def require_login():
    """Everything here is the signed-in user's own money."""


@bp.app_template_filter("money")
def money_filter(micro):
    """Micro-USD as credits: 2 decimals, more only below a cent (the one format every credits figure uses)."""
    return pricing.format_credits(micro)


def ledger_page(user_id, before=None, size=PAGE_SIZE):
    """The newest `size` ledger rows older than id `before`; returns (rows, `before` of the next page or None)."""
    query = sa.select(CreditTransaction).where(CreditTransaction.user_id == user_id)
    if before is not None:
        query = query.where(CreditTransaction.id < before)
    rows = db.session.scalars(query.order_by(CreditTransaction.id.desc()).limit(size + 1)).all()
    return rows[:size], (rows[size - 1].id if len(rows) > size else None)


@bp.get("")
def index():
    before = request.args.get("before", type=int)
    rows, next_before = ledger_page(current_user.id, before)
    return render_template("credits/index.html", rows=rows, next_before=next_before, before=before,
                           packages=redemption.packages())


@bp.get("/ledger")
def ledger():
    """One page of ledger rows: htmx's "Load older entries", and the ledger refreshing itself."""
    before = request.args.get("before", type=int)
    if not request.htmx:
        return redirect(url_for("credits.index", before=before))
    rows, next_before = ledger_page(current_user.id, before)
    return render_template("credits/_ledger_rows.html", rows=rows, next_before=next_before, before=before)


@bp.get("/balance")
def balance():
    return render_template("credits/_balance.html")


@bp.get("/badge")
def badge():
    """The nav's balance, fetched again whenever credits change or a chat answer ends."""
    return render_template("credits/_badge.html")


@bp.post("/redeem")
def redeem():
    """Redeem a code once; a bad or used code changes nothing and says so."""
    try:
        added = redemption.redeem(credit_forms.code(request.form.get("code")), current_user.id)
    except (FormError, redemption.CodeNotRedeemable) as exc:
        error = str(exc) if isinstance(exc, FormError) else NOT_REDEEMABLE
        if request.htmx:
            return render_template("credits/_redeem.html", error=error, typed_code=request.form.get("code", "")), 422
        flash(error, "error")
        return redirect(url_for("credits.index"))
    message = (f"Added {pricing.format_credits(added)} credits. "
               f"Your balance is now {pricing.format_credits(current_user.balance)} credits.")
    if request.htmx:
        return htmx_response(render_template("credits/_redeem.html", message=message), trigger="credits-changed")
    flash(message, "success")
    return redirect(url_for("credits.index"))
