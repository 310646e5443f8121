"""/usage: a user's own requests, tokens and spend per day, model and key, as charts and tables, and as CSV.

Administrators may look at anyone's (`?user=<id>`, linked from /admin/users); everybody else only
ever sees their own rows.
"""
import csv
import io

from flask import Blueprint, Response, abort, render_template, request
from flask_login import current_user, login_required

from blueprints.web.charts import bar_chart
from blueprints.web.security import protect
from extensions import db
from gateway import pricing
from models import User, usage

bp = protect(Blueprint("usage", __name__))
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")        # what a spreadsheet would run as a formula
CSV_HEADER = ("day", "model", "key", "requests", "input_tokens", "output_tokens", "credits")


@bp.before_request
@login_required
def require_login():
    """Usage is the signed-in user's own (or, for an administrator, the chosen user's)."""


@bp.get("/usage")
def index():
    user, days = _subject(), _days()
    log_filter = usage.user_filter(user.id, days)
    daily = usage.per_day(log_filter)
    charts = (bar_chart("Requests per day", [(d.label, d.requests) for d in daily], "{:,} requests".format),
              bar_chart("Tokens per day", [(d.label, d.tokens) for d in daily], "{:,} tokens".format),
              bar_chart("Spend per day (credits)", [(d.label, d.cost) for d in daily], pricing.format_credits))
    return render_template("usage/index.html", user=user, days=days, ranges=usage.RANGES, daily=daily,
                           charts=charts, models=usage.per_model(log_filter), keys=usage.per_key(log_filter),
                           total=usage.summed(daily))


@bp.get("/usage.csv")
def export():
    """The same range as one row per day, model and key; every text cell safe to open in a spreadsheet."""
    user, days = _subject(), _days()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for day, model, key, totals in usage.detail_rows(usage.user_filter(user.id, days)):
        writer.writerow((day, _cell(model), _cell(key), totals.requests, totals.prompt_tokens,
                         totals.completion_tokens, pricing.format_credits(totals.cost, exact=True)))
    filename = f"usage-{user.username}-{days}d.csv"
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


def _subject():
    """The user whose usage is shown: the caller, or for an administrator the one named by `?user=`.

    :raise 403: `?user=` from someone who is not an administrator.
    :raise 404: an administrator naming an unknown user.
    """
    user_id = request.args.get("user", type=int)
    if user_id is None or user_id == current_user.id:
        return db.session.get(User, current_user.id)
    if not current_user.is_admin:
        abort(403)
    return db.get_or_404(User, user_id)


def _days():
    days = request.args.get("days", type=int)
    return days if days in usage.RANGES else usage.RANGES[1]


def _cell(text):
    """A text cell a spreadsheet shows as text: one that could start a formula gets a leading quote."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text
