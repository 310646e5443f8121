"""Usage totals of the request log (requests, tokens, spend) per day, model or key, for /usage and its CSV.

Each total is one grouped query over `request_logs` narrowed by a `LogFilter` that always names the
user and a time range, so the (user_id, created_at) index serves it however large the table grows.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from extensions import db
from models.api_key import ApiKey
from models.request_log import LogFilter, RequestLog
from models.user import utcnow

RANGES = (7, 30, 90)          # the days /usage offers; 30 by default
WEB_CHAT = "web chat"         # requests without a key: the /chat page


@dataclass(frozen=True)
class Totals:
    label: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: int = 0             # micro-USD charged

    @property
    def tokens(self):
        return self.prompt_tokens + self.completion_tokens


def window(days, today=None):
    """The LogFilter bounds of the last `days` days, today (UTC) included: (since, until)."""
    today = today or utcnow().date()
    start = today - timedelta(days=days - 1)
    midnight = datetime.min.time()
    return datetime.combine(start, midnight), datetime.combine(today + timedelta(days=1), midnight)


def day_of(column):
    """`column`'s UTC day as 'YYYY-MM-DD' text, in the dialect of the bound database (SQLite has no date_trunc)."""
    if db.engine.dialect.name == "postgresql":
        return sa.func.to_char(column, "YYYY-MM-DD")
    return sa.func.strftime("%Y-%m-%d", column)


_SUMS = (sa.func.count(RequestLog.id), sa.func.coalesce(sa.func.sum(RequestLog.prompt_tokens), 0),
         sa.func.coalesce(sa.func.sum(RequestLog.completion_tokens), 0),
         sa.func.coalesce(sa.func.sum(RequestLog.cost), 0))


def per_day(log_filter):
    """One Totals per day of the filter's range, oldest first; days without requests are zeros (a chart has no gaps)."""
    day = day_of(RequestLog.created_at).label("day")
    found = {row[0]: Totals(row[0], *map(int, row[1:]))
             for row in db.session.execute(log_filter.apply(sa.select(day, *_SUMS)).group_by(day))}
    first, end = log_filter.since.date(), log_filter.until.date()
    days = [(first + timedelta(days=n)).isoformat() for n in range((end - first).days)]
    return [found.get(name, Totals(name)) for name in days]


def per_model(log_filter):
    """One Totals per answering model (the requested one when none answered), dearest first."""
    model = sa.func.coalesce(RequestLog.model, RequestLog.requested_model).label("model")
    rows = db.session.execute(log_filter.apply(sa.select(model, *_SUMS)).group_by(model))
    return _dearest(Totals(row[0], *map(int, row[1:])) for row in rows)


def per_key(log_filter):
    """One Totals per gateway key (by name and masked prefix), and one for the web chat, dearest first."""
    rows = db.session.execute(log_filter.apply(sa.select(RequestLog.api_key_id, *_SUMS))
                              .group_by(RequestLog.api_key_id)).all()
    names = _key_labels([row[0] for row in rows if row[0] is not None])
    return _dearest(Totals(names.get(row[0], WEB_CHAT), *map(int, row[1:])) for row in rows)


def detail_rows(log_filter):
    """(day, model, key label, Totals) for every combination with requests, for the CSV export."""
    day = day_of(RequestLog.created_at).label("day")
    model = sa.func.coalesce(RequestLog.model, RequestLog.requested_model).label("model")
    rows = db.session.execute(log_filter.apply(sa.select(day, model, RequestLog.api_key_id, *_SUMS))
                              .group_by(day, model, RequestLog.api_key_id).order_by(day, model)).all()
    names = _key_labels({row[2] for row in rows if row[2] is not None})
    return [(row[0], row[1], names.get(row[2], WEB_CHAT), Totals(row[1], *map(int, row[3:]))) for row in rows]


def summed(rows):
    """The grand total of `rows`."""
    rows = list(rows)
    return Totals("total", *(sum(getattr(r, name) for r in rows)
                             for name in ("requests", "prompt_tokens", "completion_tokens", "cost")))


def _key_labels(key_ids):
    """Key id → "name (sk-abc…wxyz)": the name alone can repeat, the masked key tells them apart."""
    if not key_ids:
        return {}
    keys = db.session.execute(sa.select(ApiKey.id, ApiKey.name, ApiKey.display_prefix, ApiKey.last4)
                              .where(ApiKey.id.in_(key_ids)))
    return {key.id: f"{key.name} ({key.display_prefix}…{key.last4})" for key in keys}


def _dearest(rows):
    return sorted(rows, key=lambda r: (-r.cost, -r.requests, r.label))


def user_filter(user_id, days, today=None):
    """The LogFilter of one user's last `days` days."""
    since, until = window(days, today)
    return LogFilter(user_id=user_id, since=since, until=until)

