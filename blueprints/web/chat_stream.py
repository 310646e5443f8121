"""GET /chat/messages/<id>/stream follows one answer over SSE; POST …/stop asks it to stop.

The answer is written by its generator (blueprints/web/chat_generation.py) into its row; this
stream only reads the row, so any number of pages, on any worker or instance, can follow it, and
leaving one changes nothing. Events: `token` (the whole text so far as sanitised markdown, which
replaces the bubble's body; its id is the length written so far, which the browser sends back as
Last-Event-ID when it reconnects) and `done` (the final bubble), which the page's
`sse-close="done"` answers by closing the EventSource.

Re-rendering the whole text costs more as it grows (about 40 ms for 9 KB with code blocks), so a
follower renders at most every RENDER_S, and never more often than RENDER_BUDGET times what its
last render took: a long answer costs at most a tenth of a core per page following it.
"""
import time
from datetime import timedelta

import sqlalchemy as sa
from flask import Response, abort, render_template, request, stream_with_context
from flask_login import current_user, login_required

from blueprints.api.chat import SSE_HEADERS
from blueprints.web.chat import bp
from blueprints.web.chat_generation import LOST_AFTER_S
from blueprints.web.markdown import render_markdown
from extensions import begin_write, db
from gateway.sse import encode_event
from models.conversation import FAILED, FINAL, ChatMessage, Conversation
from models.user import utcnow

# A comment line first, so proxies flush the headers and the browser sees the stream open at once.
PING = b": ping\n\n"
POLL_S = 0.15
RENDER_S = 0.25
RENDER_BUDGET = 10
LOST_NOTE = "The worker writing this answer stopped (a restart?) before it was complete."


@bp.get("/messages/<int:message_id>/stream")
@login_required
def stream(message_id):
    written = _owned_answer(message_id).content
    sent = min(_resume_from(), len(written))
    db.session.close()              # no pooled connection is held between looks at the row
    return Response(stream_with_context(_follow(message_id, sent)), mimetype="text/event-stream",
                    headers=SSE_HEADERS)


@bp.post("/messages/<int:message_id>/stop")
@login_required
def stop(message_id):
    """Ask the generator to stop; the followers then receive the final bubble."""
    _owned_answer(message_id)
    begin_write()
    db.session.execute(sa.update(ChatMessage).where(ChatMessage.id == message_id, ChatMessage.status.not_in(FINAL))
                       .values(stop_requested=True))
    db.session.commit()
    return "", 204


def _owned_answer(message_id):
    """The current user's assistant message, else 404."""
    message = db.session.scalar(sa.select(ChatMessage).join(Conversation)
                                .where(ChatMessage.id == message_id, ChatMessage.role == "assistant",
                                       Conversation.user_id == current_user.id))
    if message is None:
        abort(404)
    return message


def _resume_from():
    """Characters the page already has: the reconnecting EventSource's Last-Event-ID, else `?after=`."""
    raw = request.headers.get("Last-Event-ID") or request.args.get("after") or "0"
    return int(raw) if raw.isdigit() and len(raw) < 10 else 0


def _follow(message_id, sent):
    """Relay what is written as it grows, until the answer ends (or its generator is lost)."""
    yield PING
    render_at = 0.0
    while True:
        row = db.session.execute(_PROGRESS, {"id": message_id}).first()
        db.session.close()
        if row is None:             # deleted while followed
            yield encode_event("done", "")
            return
        if row.length > sent and row.status not in FINAL and time.monotonic() >= render_at:
            started = time.monotonic()
            sent, html = _rendered(message_id)
            render_at = started + max(RENDER_S, RENDER_BUDGET * (time.monotonic() - started))
            yield encode_event("token", html, event_id=sent)
        if row.status in FINAL or _lost(message_id, row):
            yield encode_event("done", render_template("chat/_message.html",
                                                       message=db.session.get(ChatMessage, message_id)))
            db.session.close()
            return
        time.sleep(POLL_S)


def _lost(message_id, row):
    """Mark failed an answer whose generator has not beaten for LOST_AFTER_S (True when it is)."""
    alive_at = row.heartbeat_at or row.created_at
    if utcnow() - alive_at < timedelta(seconds=LOST_AFTER_S):
        return False
    begin_write()
    lost = db.session.execute(sa.update(ChatMessage).where(ChatMessage.id == message_id,
                                                           ChatMessage.status.not_in(FINAL),
                                                           ChatMessage.heartbeat_at.is_not_distinct_from(row.heartbeat_at))
                              .values(status=FAILED, error=LOST_NOTE)).rowcount
    db.session.commit()
    return lost == 1


def _rendered(message_id):
    """(length, sanitised markdown) of the text written so far; bare CRs become newlines so the
    text can never end an SSE line early."""
    text = db.session.scalar(_TEXT, {"id": message_id}) or ""
    db.session.close()
    return len(text), render_markdown(text.replace("\r\n", "\n").replace("\r", "\n"))


# Polled several times a second: the text itself is read only when it is rendered.
_PROGRESS = sa.select(sa.func.length(ChatMessage.content).label("length"), ChatMessage.status,
                      ChatMessage.heartbeat_at, ChatMessage.created_at).where(ChatMessage.id == sa.bindparam("id"))
_TEXT = sa.select(ChatMessage.content).where(ChatMessage.id == sa.bindparam("id"))
