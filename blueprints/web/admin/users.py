"""/admin/users: every account with its role, status and balance; grant or take back credits, promote or
demote, disable or enable, and a link to each user's usage.

A grant goes through `credit.grant`, as `flask credits grant` does: one ledger row, and a take-back
can never go below what the user has available (nothing is written when it would). Role and status
go through `user.change_access`, which never leaves the gateway without an active administrator.
"""
import sqlalchemy as sa
from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from htmx_flask import make_response as htmx_response

from blueprints.web import credit_forms
from blueprints.web.admin import bp
from blueprints.web.key_forms import FormError
from extensions import db
from gateway import pricing
from models import User, credit, login_session
from models.user import AccessRefused, change_access

PAGE_SIZE = 50
MAX_NOTE = 300


def users_page(query="", after=None, size=PAGE_SIZE):
    """Accounts in id order, filtered by name or email; returns (users, `after` of the next page or None)."""
    select = sa.select(User)
    if query:
        pattern = f"%{query}%"
        select = select.where(sa.or_(User.username.ilike(pattern), User.email.ilike(pattern)))
    if after is not None:
        select = select.where(User.id > after)
    users = db.session.scalars(select.order_by(User.id).limit(size + 1)).all()
    return users[:size], (users[size - 1].id if len(users) > size else None)


@bp.get("/users")
def users():
    query = request.args.get("q", "").strip()[:100]
    after = request.args.get("after", type=int)
    rows, next_after = users_page(query, after)
    return render_template("admin/_user_rows.html" if request.htmx else "admin/users.html",
                           users=rows, next_after=next_after, query=query, after=after)


@bp.post("/users/<int:user_id>/grant")
def users_grant(user_id):
    """Add (or, negative, take back) credits with a note; the row comes back with the new balance."""
    user = db.get_or_404(User, user_id)
    try:
        amount = credit_forms.grant_amount(request.form.get("amount"))
        note = (request.form.get("note") or "").strip()[:MAX_NOTE] or f"granted by {current_user.username}"
        balance = credit.grant(user.id, amount, description=note)
    except FormError as exc:
        return _row(user, error=str(exc), typed=request.form)
    except credit.InsufficientCredit as exc:
        return _row(user, error=f"Cannot take back {pricing.format_credits(exc.needed)}: {user.username} has only "
                                f"{pricing.format_credits(exc.available)} credits available. Nothing was changed.",
                    typed=request.form)
    db.session.commit()
    verb = "Granted" if amount > 0 else "Took back"
    message = f"{verb} {pricing.format_credits(abs(amount))} credits; balance now {pricing.format_credits(balance)}."
    if request.htmx:
        return htmx_response(render_template("admin/_user_row.html", user=user, message=message),
                             trigger="credits-changed")
    flash(f"{user.username}: {message}", "success")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/role")
def users_role(user_id):
    """Promote to administrator or demote to user (never oneself, never the last active admin)."""
    return _change(user_id, role="admin" if request.form.get("role") == "admin" else "user")


@bp.post("/users/<int:user_id>/status")
def users_status(user_id):
    """Disable (the user's logins and API keys stop working at once) or enable an account."""
    return _change(user_id, disabled=request.form.get("disabled") == "1")


def _change(user_id, role=None, disabled=None):
    """Apply a role or status change and answer with the row (htmx) or a redirect; a refusal changes nothing."""
    user = db.get_or_404(User, user_id)
    try:
        change_access(user, current_user.id, role=role, disabled=disabled)
    except AccessRefused as exc:
        db.session.rollback()
        return _row(user, error=f"{exc} Nothing was changed.")
    if user.disabled:
        login_session.end_all(user.id)          # re-enabling later does not revive an old (copied) cookie
    db.session.commit()
    message = (f"{user.username} is disabled: their pages and API keys stop working now." if user.disabled
               else f"{user.username} is an active {user.role}.")
    if request.htmx:
        return render_template("admin/_user_row.html", user=user, message=message)
    flash(message, "success")
    return redirect(url_for("admin.users"))


def _row(user, error, typed=None):
    """A refused change: the row again with the reason (htmx), else the page with a flash; `typed` (a refused
    grant's form) reopens the grant form with what was entered."""
    if request.htmx:
        return render_template("admin/_user_row.html", user=user, error=error, typed=typed), 422
    flash(f"{user.username}: {error}", "error")
    return redirect(url_for("admin.users"))
