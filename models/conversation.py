"""Browser chat history: a user's conversations and their messages.

An assistant message is created `streaming` by the POST that asks the question, which also starts
its generation (blueprints/web/chat_generation.py); the growing text is written to the row, so
any page, tab, worker or instance can follow it. It ends `done`, `stopped` or `error`.

A deleted conversation is only marked (`deleted_at`) so that Undo can bring it back; it is purged
once the undo window has passed (blueprints/web/chat.py).
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
    # sent upstream with every answer; None leaves the provider's default
    system_prompt: so.Mapped[str] = so.mapped_column(sa.Text, default="", server_default="")
    temperature: so.Mapped[float | None] = so.mapped_column()
    max_tokens: so.Mapped[int | None] = so.mapped_column()
    deleted_at: so.Mapped[datetime | None] = so.mapped_column()                 # undo window, then purged

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


def listed(user_id):
    """A user's conversations for the sidebar, newest first (deleted ones left out)."""
    return (sa.select(Conversation).where(Conversation.user_id == user_id, Conversation.deleted_at.is_(None))
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc()))


def matching(user_id, words):
    """The user's conversations whose title or any message contains `words` (case-insensitive).

    Bounded rather than indexed: it only reads this user's rows, and the caller limits the result."""
    in_messages = sa.exists().where(ChatMessage.conversation_id == Conversation.id,
                                    ChatMessage.content.icontains(words, autoescape=True))
    return listed(user_id).where(sa.or_(Conversation.title.icontains(words, autoescape=True), in_messages))


def unused(user_id):
    """The user's conversation that has no message yet, if any: "New conversation" reuses it."""
    return listed(user_id).where(~sa.exists().where(ChatMessage.conversation_id == Conversation.id)).limit(1)


def purge_deleted(user_id, cutoff):
    """Delete for good the user's conversations deleted before `cutoff` (their undo window is over)."""
    gone = sa.select(Conversation.id).where(Conversation.user_id == user_id, Conversation.deleted_at < cutoff)
    db.session.execute(sa.delete(ChatMessage).where(ChatMessage.conversation_id.in_(gone)))
    db.session.execute(sa.delete(Conversation).where(Conversation.id.in_(gone)))
