"""One row per client request, with every upstream attempt (never a key, only its id)."""
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from extensions import db
from models.user import utcnow


class RequestLog(db.Model):
    __tablename__ = "request_logs"
    __table_args__ = (sa.Index("ix_request_logs_user_created", "user_id", "created_at"),)

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
    overrun: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0, server_default="0")  # micro-USD beyond the hold
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)
