"""One row per client request, with every upstream attempt (never a key, only its id)."""
import os
import time
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from extensions import db
from models.api_key import ApiKey
from models.user import User, utcnow


def new_request_id():
    """A request's id: 32 hex digits, the milliseconds since the epoch then 80 random bits (as a UUIDv7).

    Ids made in order land at the right edge of the unique indexes on request ids (the log, the
    ledger, the holds), a few pages a transaction dirties and keeps cached; random ones touch a
    page anywhere in them, and once an index outgrows the cache each insert reads one back.
    """
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


class RequestLog(db.Model):
    __tablename__ = "request_logs"
    __table_args__ = (sa.Index("ix_request_logs_user_created", "user_id", "created_at"),
                      sa.Index("ix_request_logs_key_created", "api_key_id", "created_at"),
                      sa.Index("ix_request_logs_model_created", "model", "created_at"),
                      sa.Index("ix_request_logs_status_created", "status", "created_at"))

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    request_id: so.Mapped[str] = so.mapped_column(sa.String(40), unique=True)
    user_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"))
    api_key_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("api_keys.id"))
    endpoint: so.Mapped[str] = so.mapped_column(sa.String(40))
    requested_model: so.Mapped[str] = so.mapped_column(sa.String(200))
    model: so.Mapped[str | None] = so.mapped_column(sa.String(200))
    provider: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    stream: so.Mapped[bool] = so.mapped_column(default=False)
    status: so.Mapped[int] = so.mapped_column()
    error: so.Mapped[str | None] = so.mapped_column(sa.Text)
    attempts: so.Mapped[list] = so.mapped_column(sa.JSON, default=list)
    prompt_tokens: so.Mapped[int] = so.mapped_column(default=0)
    completion_tokens: so.Mapped[int] = so.mapped_column(default=0)
    latency_ms: so.Mapped[float] = so.mapped_column(default=0.0)
    cache_read_tokens: so.Mapped[int] = so.mapped_column(default=0, server_default="0")
    cache_write_tokens: so.Mapped[int] = so.mapped_column(default=0, server_default="0")
    reasoning_tokens: so.Mapped[int] = so.mapped_column(default=0, server_default="0")
    cost: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0, server_default="0")    # micro-USD charged
    cost_parts: so.Mapped[dict | None] = so.mapped_column(sa.JSON)     # micro-USD per part: input, cache_read, …
    overrun: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0, server_default="0")  # micro-USD beyond the hold
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)


@dataclass(frozen=True)
class LogFilter:
    """The request-log filters shared by /api/logs, /admin/requests and /usage: each one left None
    is not applied. Every combination is served by an index that starts with one of its columns."""
    user_id: int | None = None
    api_key_id: int | None = None
    model: str | None = None
    status: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    username: str | None = None
    key_name: str | None = None      # keys' names are not unique: every key of that name
    failed: bool | None = None       # True: status 400 and above; False: served

    def apply(self, select):
        """`select` narrowed to the matching rows (it must select from `request_logs`)."""
        for column, value in ((RequestLog.user_id, self.user_id), (RequestLog.api_key_id, self.api_key_id),
                              (RequestLog.model, self.model), (RequestLog.status, self.status)):
            if value is not None:
                select = select.where(column == value)
        if self.username is not None:
            select = select.where(RequestLog.user_id.in_(sa.select(User.id).where(User.username == self.username)))
        if self.key_name is not None:          # one user's keys of that name when the user is known: an index's worth
            keys = sa.select(ApiKey.id).where(ApiKey.name == self.key_name)
            if self.user_id is not None:
                keys = keys.where(ApiKey.user_id == self.user_id)
            select = select.where(RequestLog.api_key_id.in_(keys))
        if self.failed is not None:
            select = select.where(RequestLog.status >= 400 if self.failed else RequestLog.status < 400)
        if self.since is not None:
            select = select.where(RequestLog.created_at >= self.since)
        if self.until is not None:
            select = select.where(RequestLog.created_at < self.until)
        return select


@dataclass(frozen=True)
class ModelStats:
    """One model's traffic over a window: its requests, those that failed (5xx: upstream or gateway),
    and the fastest, mean and slowest time of its served requests, in milliseconds."""
    requests: int
    failed: int
    fastest_ms: float | None
    mean_ms: float | None
    slowest_ms: float | None


def model_stats(since):
    """model id -> ModelStats for every model with requests since `since`, in one grouped query.

    A request that found no upstream has no answering model; it counts for the model it asked for.
    """
    model = sa.func.coalesce(RequestLog.model, RequestLog.requested_model)
    served = sa.case((RequestLog.status < 400, RequestLog.latency_ms))
    rows = db.session.execute(
        sa.select(model, sa.func.count(), sa.func.count(sa.case((RequestLog.status >= 500, 1))),
                  sa.func.min(served), sa.func.avg(served), sa.func.max(served))
        .where(RequestLog.created_at >= since).group_by(model))
    return {name: ModelStats(requests, failed, fastest, mean and float(mean), slowest)
            for name, requests, failed, fastest, mean, slowest in rows}


def hourly_stats(since):
    """[(hour, requests, client errors (4xx), failed (5xx), mean ms of the served)] since `since`, oldest
    first, in one grouped query; `hour` is "YYYY-MM-DDTHH:00:00" (UTC), hours without requests left out."""
    if db.engine.dialect.name == "postgresql":
        hour = sa.func.to_char(sa.func.date_trunc("hour", RequestLog.created_at), 'YYYY-MM-DD"T"HH24:00:00')
    else:
        hour = sa.func.strftime("%Y-%m-%dT%H:00:00", RequestLog.created_at)
    status = RequestLog.status
    return db.session.execute(
        sa.select(hour, sa.func.count(), sa.func.count(sa.case(((status >= 400) & (status < 500), 1))),
                  sa.func.count(sa.case((status >= 500, 1))), sa.func.avg(sa.case((status < 400, RequestLog.latency_ms))))
        .where(RequestLog.created_at >= since).group_by(hour).order_by(hour)).all()
