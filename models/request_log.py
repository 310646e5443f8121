"""One row per client request, with every upstream attempt (never a key, only its id)."""
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from extensions import db
from models.user import utcnow


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

    def apply(self, select):
        """`select` narrowed to the matching rows (it must select from `request_logs`)."""
        for column, value in ((RequestLog.user_id, self.user_id), (RequestLog.api_key_id, self.api_key_id),
                              (RequestLog.model, self.model), (RequestLog.status, self.status)):
            if value is not None:
                select = select.where(column == value)
        if self.since is not None:
            select = select.where(RequestLog.created_at >= self.since)
        if self.until is not None:
            select = select.where(RequestLog.created_at < self.until)
        return select
