"""GET /chat/messages/<id>/stream: one answer, streamed token by token over SSE.

The answer goes through the API's own pipeline (route_chat + Turn), so routing, fallback,
billing and the request log are exactly those of /v1/chat/completions. Events: `token`
(escaped text, appended while streaming) and `done` (the final bubble, markdown rendered),
which the page's `sse-close="done"` answers by closing the EventSource.

Only the request that flips the message pending → streaming (one conditional UPDATE) calls the
upstream. EventSource reconnects by itself; a reconnect just receives the stored answer.
"""
import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import Response, abort, g, render_template, stream_with_context
from flask_login import current_user, login_required
from markupsafe import escape

from blueprints.api.auth import Caller
from blueprints.api.chat import SSE_HEADERS, route_chat
from blueprints.api.records import Turn
from blueprints.web.chat import bp
from extensions import db
from gateway.errors import GatewayError, StreamInterrupted
from gateway.sse import encode_event
from models import UserProviderKey
from models.conversation import DONE, FAILED, PENDING, STOPPED, STREAMING, ChatMessage, Conversation

# A comment line first, so proxies flush the headers and the browser sees the stream open at once.
PING = b": ping\n\n"


@dataclass
class Outcome:
    """What the stream produced, saved onto the message when it ends (however it ends)."""
    pieces: list = field(default_factory=list)
    status: str = DONE
    error: str | None = None
    model: str | None = None
    attempts: int = 0
    usage: dict = field(default_factory=dict)
    cost: int = 0


@bp.get("/messages/<int:message_id>/stream")
@login_required
def stream(message_id):
    message = _owned_answer(message_id)
    flipped = db.session.execute(sa.update(ChatMessage).where(ChatMessage.id == message.id,
                                                              ChatMessage.status == PENDING)
                                 .values(status=STREAMING)).rowcount == 1
    db.session.commit()
    if not flipped:
        events = [PING, _done_event(db.session.get(ChatMessage, message.id))]
        return Response(events, mimetype="text/event-stream", headers=SSE_HEADERS)
    caller = _session_caller(current_user.id)
    history, model = _history(message), message.requested_model
    db.session.close()              # no pooled connection is held while the upstream works
    return Response(stream_with_context(_relay(message_id, caller, model, history)),
                    mimetype="text/event-stream", headers=SSE_HEADERS)


def _session_caller(user_id):
    """The signed-in user as a keyless caller: no key limits, their own provider keys tried first."""
    own_keys = db.session.scalar(sa.select(sa.exists().where(UserProviderKey.user_id == user_id)))
    return Caller(user_id=user_id, key_id=None, model_limits=(), allow_ips=(), has_provider_keys=bool(own_keys))


def _owned_answer(message_id):
    """The current user's assistant message, else 404."""
    message = db.session.scalar(sa.select(ChatMessage).join(Conversation)
                                .where(ChatMessage.id == message_id, ChatMessage.role == "assistant",
                                       Conversation.user_id == current_user.id))
    if message is None:
        abort(404)
    return message


def _history(answer):
    """The conversation so far as OpenAI messages (failed or empty turns left out)."""
    rows = db.session.scalars(sa.select(ChatMessage).where(ChatMessage.conversation_id == answer.conversation_id,
                                                           ChatMessage.id < answer.id)
                              .order_by(ChatMessage.id)).all()
    return [{"role": m.role, "content": m.content} for m in rows if m.content and m.status in (DONE, STOPPED)]


def _relay(message_id, caller, model, history):
    """Stream one answer; whatever happens (done, broken upstream, stop), settle and save it."""
    yield PING
    g.request_id = uuid.uuid4().hex
    turn = Turn(caller, "web-chat", model, stream=True)
    outcome = Outcome()
    try:
        session = route_chat(caller, {"model": model, "messages": history, "stream": True}, turn,
                             stream=True, include_usage=True)
    except GatewayError as exc:
        outcome.status, outcome.error = FAILED, exc.message
        outcome.attempts = sum(1 for a in exc.attempts if a.kind != "skipped")
        yield _done_event(_save(message_id, outcome))
        return
    yield from _relay_session(session, turn, message_id, outcome)
    yield _done_event(db.session.get(ChatMessage, message_id))


def _relay_session(session, turn, message_id, outcome):
    """Mirror of the API's `_sse`: the same settlement in `finally`, then the message is saved."""
    status, error, finished = 200, None, False
    try:
        for chunk in session:
            piece = _content(chunk)
            if piece:
                outcome.pieces.append(piece)
                yield encode_event("token", _escaped(piece))
        finished = True
    except StreamInterrupted as exc:
        status, error = 502, exc.message
        outcome.status, outcome.error = FAILED, exc.message
    except GeneratorExit:
        status, error = 499, "client disconnected"
        outcome.status, outcome.error = STOPPED, "Stopped before the answer was complete."
        raise
    finally:
        if not finished and status == 200:          # an unexpected exception is on its way up
            status, error = 500, "internal error while streaming"
            outcome.status, outcome.error = FAILED, "The gateway failed while streaming; see the logs."
        session.close()
        outcome.cost = turn.served(session.model, session.attempts, session.produced_usage(), status, error) or 0
        outcome.model, outcome.usage = session.model.id, session.produced_usage()
        outcome.attempts = sum(1 for a in session.attempts if a.kind != "skipped")
        _save(message_id, outcome)


def _content(chunk):
    choices = chunk.get("choices") or ()
    return (choices[0].get("delta") or {}).get("content") if choices else None


def _escaped(piece):
    """Escaped text in a span; bare CRs become newlines so text can never end an SSE line early."""
    return f"<span>{escape(piece.replace(chr(13) + chr(10), chr(10)).replace(chr(13), chr(10)))}</span>"


def _save(message_id, outcome):
    message = db.session.get(ChatMessage, message_id)
    if message is None:                 # the conversation was deleted while it streamed
        return None
    message.content = "".join(outcome.pieces)
    message.status, message.error = outcome.status, outcome.error
    message.model, message.attempts, message.cost = outcome.model, outcome.attempts, outcome.cost
    message.prompt_tokens = int(outcome.usage.get("prompt_tokens") or 0)
    message.completion_tokens = int(outcome.usage.get("completion_tokens") or 0)
    db.session.commit()
    return message


def _done_event(message):
    html = render_template("chat/_message.html", message=message) if message is not None else ""
    return encode_event("done", html)
