"""/admin/requests: the request log, newest first, filtered by user, key, model, status and days, and one
request's detail with every attempt and the usage and cost breakdown.

Built to stay fast at millions of rows: every filter is one of `LogFilter`'s indexed ones, pages are
keyset-paged on (created_at, id) rather than offset, and nothing counts the whole table.
"""
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa
from flask import render_template, request

from blueprints.web.admin import bp
from extensions import db
from models import ApiKey, RequestLog, User
from models.request_log import LogFilter

PAGE_SIZE = 50
FILTERS = ("user", "key", "model", "status", "since", "until")


@bp.get("/requests")
def requests():
    form = {name: request.args.get(name, "").strip()[:200] for name in FILTERS}
    log_filter, problem = _filter(form)
    before = request.args.get("before", type=int)
    rows, next_before = _page(log_filter, before) if problem is None else ([], None)
    query = {name: value for name, value in form.items() if value}      # what the pager's links carry on
    partial = request.htmx and request.htmx.target == "request-rows"
    return render_template("admin/_request_rows.html" if partial else "admin/requests.html", rows=rows, form=form,
                           query=query, problem=problem, before=before, next_before=next_before, filtered=bool(query))


@bp.get("/requests/<int:log_id>")
def requests_detail(log_id):
    row = db.get_or_404(RequestLog, log_id)
    username = db.session.scalar(sa.select(User.username).where(User.id == row.user_id))
    key = db.session.get(ApiKey, row.api_key_id) if row.api_key_id is not None else None
    return render_template("admin/request_detail.html", row=row, username=username, key=key)


def _filter(form):
    """The LogFilter the form asks for, or (None, what is wrong with it) — never a guess."""
    try:
        user_id = _user_id(form["user"]) if form["user"] else None
        since = _day(form["since"], "From")
        until = _day(form["until"], "To")
        return LogFilter(user_id=user_id, api_key_id=_number(form["key"], "Key id"), model=form["model"] or None,
                         status=_number(form["status"], "Status"),
                         since=since and datetime.combine(since, time.min),
                         until=until and datetime.combine(until + timedelta(days=1), time.min)), None
    except ValueError as exc:
        return None, str(exc)


def _user_id(username):
    user_id = db.session.scalar(sa.select(User.id).where(User.username == username))
    if user_id is None:
        raise ValueError(f"No user is named “{username}”.")
    return user_id


def _number(text, what):
    if not text:
        return None
    if not text.isdigit() or len(text) > 18:
        raise ValueError(f"{what} must be a whole number.")
    return int(text)


def _day(text, what):
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} must be a date like 2026-11-30.") from None


def _page(log_filter, before=None):
    """Up to PAGE_SIZE rows (log, username, key name) older than the row `before`, newest first, and the
    `before` of the next page (None on the last)."""
    select = log_filter.apply(sa.select(RequestLog, User.username, ApiKey.name)
                              .outerjoin(User, User.id == RequestLog.user_id)
                              .outerjoin(ApiKey, ApiKey.id == RequestLog.api_key_id))
    if before is not None:
        cursor = db.session.scalar(sa.select(RequestLog.created_at).where(RequestLog.id == before))
        if cursor is not None:
            select = select.where(RequestLog.created_at <= cursor,       # the range an index can seek to
                                  sa.or_(RequestLog.created_at < cursor, RequestLog.id < before))
    rows = db.session.execute(select.order_by(RequestLog.created_at.desc(), RequestLog.id.desc())
                              .limit(PAGE_SIZE + 1)).all()
    return rows[:PAGE_SIZE], (rows[PAGE_SIZE - 1][0].id if len(rows) > PAGE_SIZE else None)
