"""Browser chat history: a user's conversations and their messages.

An assistant message is created `streaming` by the POST that asks the question, which also starts
its generation (blueprints/web/chat_generation.py); the growing text is written to the row, so
any page, tab, worker or instance can follow it. It ends `done`, `stopped` or `error`.
"""
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from extensions import db
from models.user import utcnow

STREAMING, DONE, STOPPED, FAILED = "streaming", "done", "stopped", "error"
FINAL = (DONE, STOPPED, FAILED)


class Conversation(db.Model):
    __tablename__ = "conversations"
    __table_args__ = (sa.Index("ix_conversations_user_updated", "user_id", "updated_at"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    title: so.Mapped[str] = so.mapped_column(sa.String(120), default="New conversation")
    model: so.Mapped[str] = so.mapped_column(sa.String(200), default="")        # the picker's last choice
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    updated_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    messages = so.relationship("ChatMessage", order_by="ChatMessage.id", cascade="all, delete-orphan",
                               back_populates="conversation")


class ChatMessage(db.Model):
    __tablename__ = "chat_messages"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    conversation_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("conversations.id"), index=True)
    role: so.Mapped[str] = so.mapped_column(sa.String(16))                       # user | assistant
    content: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    status: so.Mapped[str] = so.mapped_column(sa.String(16), default=DONE)      # streaming|done|stopped|error
    requested_model: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    model: so.Mapped[str | None] = so.mapped_column(sa.String(200))             # the model that answered
    attempts: so.Mapped[int] = so.mapped_column(default=0)                      # upstream tries (skips excluded)
    prompt_tokens: so.Mapped[int] = so.mapped_column(default=0)
    completion_tokens: so.Mapped[int] = so.mapped_column(default=0)
    cost: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)          # micro-USD charged
    error: so.Mapped[str | None] = so.mapped_column(sa.Text)
    stop_requested: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.false())   # the Stop button
    heartbeat_at: so.Mapped[datetime | None] = so.mapped_column()      # its generator was alive then
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    conversation = so.relationship("Conversation", back_populates="messages")
