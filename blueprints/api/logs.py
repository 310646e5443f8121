"""Seed 002's request log and task list (SPEC 2.5), authenticated by API key or JWT.

A user reads only their own rows, whatever they pass; an admin reads everyone's and may narrow
them by `username`. Quota figures are seed 002's units (500,000 = 1 USD).
"""
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from flask import Blueprint, g, jsonify, request

from blueprints.api.auth import is_admin
from blueprints.api.detail import detail_api, int_arg
from extensions import db
from gateway import pricing
from gateway.errors import GatewayError
from models import ApiKey, RequestLog, User
from models.request_log import LogFilter

bp = Blueprint("logs_api", __name__, url_prefix="/api")
detail_api(bp)

MAX_LOG_PAGE = 1000                 # seed 002 defaults to 10,000 rows a page; this gateway pages by 100, up to 1,000
SERVED, FAILED = 2, 5               # one-api's log types "consume" and "error"; top-ups (1), management (3)
OTHER_TYPES = (1, 3, 4)             # and system events (4) are not request-log rows, so they list nothing
LAST_TIMESTAMP = 2**33              # the year 2242: later stamps are typing mistakes


@bp.get("/logs")
def list_logs():
    """`p`, `page_size`, `type`, `token_name`, `model_name`, `username` (admin), `start_timestamp`,
    `end_timestamp` (Unix seconds, both inclusive) → the page, newest first, and the total."""
    page, size = int_arg("p", 1, 1, 10**6), int_arg("page_size", 100, 1, MAX_LOG_PAGE)
    kind = int_arg("type", 0, 0, FAILED)
    since, until = _time_range()
    admin = is_admin(g.caller)
    where = LogFilter(user_id=None if admin else g.caller.user_id, username=_text("username") if admin else None,
                      key_name=_text("token_name"), model=_text("model_name"), since=since,
                      until=until and until + timedelta(seconds=1),
                      failed={SERVED: False, FAILED: True}.get(kind))
    if kind in OTHER_TYPES:             # checked after the other parameters, so a bad one is still a 400
        return _page([], 0, page, size)
    total = db.session.scalar(where.apply(sa.select(sa.func.count()).select_from(RequestLog)))
    newest_first = (RequestLog.created_at.desc(), RequestLog.id.desc())     # walks the (…, created_at) indexes
    rows = db.session.execute(where.apply(_ROWS).order_by(*newest_first).limit(size).offset((page - 1) * size))
    return _page([_log_json(row) for row in rows], total, page, size)


@bp.get("/tasks")
def list_tasks():
    """The caller's asynchronous jobs. The gateway runs none yet (every request is answered while
    the client waits), so the list is always empty; the parameters are still checked."""
    _time_range()
    return jsonify({"success": True, "message": "", "data": []})


def _page(items, total, page, size):
    return jsonify({"success": True, "message": "", "data": items, "total": total, "page": page, "page_size": size})


def _time_range():
    """`start_timestamp` and `end_timestamp`, each optional.

    :raise GatewayError: 400 for a bad one, or a start after the end.
    """
    since, until = _moment("start_timestamp"), _moment("end_timestamp")
    if since and until and since > until:
        raise GatewayError(400, "'start_timestamp' is after 'end_timestamp'.", code="invalid_parameter")
    return since, until


def _moment(name):
    """An optional Unix timestamp parameter as a naive UTC datetime (how the log stores time).

    :raise GatewayError: 400 naming the parameter.
    """
    if name not in request.args:
        return None
    return datetime.fromtimestamp(int_arg(name, 0, 0, LAST_TIMESTAMP), timezone.utc).replace(tzinfo=None)


def _text(name):
    """An optional text filter; empty is no filter."""
    value = request.args.get(name, "").strip()
    if len(value) > 200:
        raise GatewayError(400, f"'{name}' is too long.", code="invalid_parameter")
    return value or None


def _log_json(row):
    """One-api's log object, plus the usage breakdown; never a key, only its name and id."""
    return {"id": row.id, "request_id": row.request_id,
            "created_at": int(row.created_at.replace(tzinfo=timezone.utc).timestamp()),
            "type": FAILED if row.status >= 400 else SERVED, "user_id": row.user_id, "username": row.username or "",
            "token_id": row.api_key_id, "token_name": row.token_name or "",
            "model_name": row.model or row.requested_model, "endpoint": row.endpoint, "is_stream": row.stream,
            "status": row.status, "content": row.error or "", "quota": pricing.to_quota(row.cost),
            "prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens,
            "cache_read_tokens": row.cache_read_tokens, "cache_write_tokens": row.cache_write_tokens,
            "reasoning_tokens": row.reasoning_tokens, "use_time": round(row.latency_ms / 1000, 3)}


_ROWS = (sa.select(RequestLog.id, RequestLog.request_id, RequestLog.created_at, RequestLog.status, RequestLog.user_id,
                   User.username, RequestLog.api_key_id, ApiKey.name.label("token_name"), RequestLog.model,
                   RequestLog.requested_model, RequestLog.endpoint, RequestLog.stream, RequestLog.error,
                   RequestLog.cost, RequestLog.prompt_tokens, RequestLog.completion_tokens,
                   RequestLog.cache_read_tokens, RequestLog.cache_write_tokens, RequestLog.reasoning_tokens,
                   RequestLog.latency_ms)
         .select_from(RequestLog).outerjoin(User, User.id == RequestLog.user_id)
         .outerjoin(ApiKey, ApiKey.id == RequestLog.api_key_id))
