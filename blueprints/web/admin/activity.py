"""/admin/activity: every user's provider-key activity, newest first, filtered by user and action, paged."""
from flask import render_template, request

from blueprints.web.admin import bp
from extensions import db
from models import ActivityLog, User
from models.activity_log import ACTIONS

PER_PAGE = 50


@bp.get("/activity")
def activity():
    filters = {"user": request.args.get("user", type=int), "action": _action(request.args.get("action"))}
    page = max(request.args.get("page", 1, type=int), 1)
    rows, has_next = _rows(filters, page)
    partial = request.htmx and request.htmx.target == "activity-rows"
    return render_template("admin/_activity_rows.html" if partial else "admin/activity.html", rows=rows,
                           has_next=has_next, page=page, filters=filters, users=_users_with_activity(),
                           actions=ACTIONS)


def _rows(filters, page):
    """One page of (ActivityLog, username), and whether an older page exists."""
    query = db.select(ActivityLog, User.username).join(User, User.id == ActivityLog.user_id)
    if filters["user"] is not None:
        query = query.where(ActivityLog.user_id == filters["user"])
    if filters["action"]:
        query = query.where(ActivityLog.action == filters["action"])
    rows = db.session.execute(query.order_by(ActivityLog.id.desc())
                              .offset((page - 1) * PER_PAGE).limit(PER_PAGE + 1)).all()
    return rows[:PER_PAGE], len(rows) > PER_PAGE


def _users_with_activity():
    """The filter's choices: only users who have a row (a list of every account would be mostly useless)."""
    having = db.select(ActivityLog.user_id).distinct()
    return db.session.execute(db.select(User.id, User.username).where(User.id.in_(having))
                              .order_by(User.username)).all()


def _action(value):
    return value if value in ACTIONS else None
