"""A web chat answer is generated apart from any browser connection, so that a reload, another tab
or a second device finds it still being written, and only Stop (or the deadline) ends it.

The POST that asks the question starts `start()`: a background thread (a greenlet under gevent)
that routes through the API's own pipeline (route_chat + Turn: routing, fallback, billing and the
request log are those of /v1/chat/completions) and writes the growing text to the message row
every FLUSH_S. One heartbeat per worker marks its live answers every HEARTBEAT_S, so a reader can
tell an answer whose worker died (LOST_AFTER_S without a beat) from a slow one.
"""
import threading
import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import g

from blueprints.api.auth import Caller
from blueprints.api.chat import route_chat
from blueprints.api.records import Turn
from extensions import begin_write, db
from gateway.errors import GatewayError, StreamInterrupted
from models import UserProviderKey
from models.conversation import DONE, FAILED, STOPPED, ChatMessage
from models.request_log import new_request_id
from models.user import utcnow

FLUSH_S = 0.2           # how often the growing text is written (and Stop looked for) while chunks come
HEARTBEAT_S = 5.0
LOST_AFTER_S = 20.0     # a live answer without a heartbeat this long lost its worker
STOPPED_NOTE = "Stopped before the answer was complete."


@dataclass
class Outcome:
    """What the generation produced, saved onto the message when it ends (however it ends)."""
    pieces: list = field(default_factory=list)
    status: str = DONE
    error: str | None = None
    model: str | None = None
    attempts: int = 0
    usage: dict = field(default_factory=dict)
    cost: int = 0


class _LiveAnswers:
    """This worker's answers being generated, and the one heartbeat thread that marks them alive."""

    def __init__(self):
        self.ids = set()
        self.lock = threading.Lock()
        self.beating = False

    def add(self, app, message_id):
        with self.lock:
            self.ids.add(message_id)
            if not self.beating:
                self.beating = True
                threading.Thread(target=self._beat, args=(app,), name="chat-heartbeat", daemon=True).start()

    def discard(self, message_id):
        with self.lock:
            self.ids.discard(message_id)

    def _beat(self, app):
        while True:
            time.sleep(HEARTBEAT_S)
            with self.lock:
                ids = list(self.ids)
            if not ids:
                continue
            with app.app_context():
                try:
                    begin_write()
                    db.session.execute(sa.update(ChatMessage).where(ChatMessage.id.in_(ids))
                                       .values(heartbeat_at=utcnow()))
                    db.session.commit()
                except sa.exc.SQLAlchemyError:
                    db.session.rollback()
                    app.logger.exception("chat heartbeat failed; will retry")


LIVE = _LiveAnswers()


def start(app, answer, pinned=False):
    """Generate `answer` (a committed, `streaming` message) in the background; returns at once.

    `pinned`: only the requested model may answer (no failover to other models), for a model that
    runs on the user's own key."""
    caller, body = _session_caller(answer.conversation.user_id), request_body(answer, pinned)
    LIVE.add(app, answer.id)
    threading.Thread(target=_generate, args=(app, answer.id, caller, body, f"chat:{answer.conversation_id}"),
                     name=f"chat-answer-{answer.id}", daemon=True).start()


def request_body(answer, pinned=False):
    """The chat request for `answer`: the history after the conversation's system prompt, and its
    temperature and max tokens (the latter also bounds the credit held for it)."""
    conversation = answer.conversation
    system = [{"role": "system", "content": conversation.system_prompt}] if conversation.system_prompt else []
    body = {"model": answer.requested_model, "messages": system + _history(answer), "stream": True}
    if conversation.temperature is not None:
        body["temperature"] = conversation.temperature
    if conversation.max_tokens:
        body["max_completion_tokens"] = conversation.max_tokens
    if pinned:
        body["models"] = []             # an explicit, empty fallback list: this model alone
    return body


def _session_caller(user_id):
    """The signed-in user as a keyless caller: no key limits, their own provider keys tried first."""
    own_keys = db.session.scalar(sa.select(sa.exists().where(UserProviderKey.user_id == user_id)))
    return Caller(user_id=user_id, key_id=None, model_limits=(), allow_ips=(), has_provider_keys=bool(own_keys))


def _history(answer):
    """The conversation so far as OpenAI messages (failed or empty turns left out)."""
    rows = db.session.scalars(sa.select(ChatMessage).where(ChatMessage.conversation_id == answer.conversation_id,
                                                           ChatMessage.id < answer.id)
                              .order_by(ChatMessage.id)).all()
    return [{"role": m.role, "content": m.content} for m in rows if m.content and m.status in (DONE, STOPPED)]


def _generate(app, message_id, caller, body, conversation):
    """Its own request context (the POST's is gone; a browser chat brings no provider-key headers)."""
    try:
        with app.test_request_context():
            g.request_id = new_request_id()
            _answer(message_id, caller, body, conversation)
    except Exception:                  # noqa: BLE001  (a background thread has no one else to tell)
        app.logger.exception("chat answer %s failed", message_id)
    finally:
        LIVE.discard(message_id)


def _answer(message_id, caller, body, conversation):
    """`conversation` keeps the chat on one operator key while it is healthy (cache affinity)."""
    turn = Turn(caller, "web-chat", body["model"], stream=True)
    outcome = Outcome()
    try:
        session = route_chat(caller, body, turn, stream=True, include_usage=True, affinity=lambda: conversation)
    except GatewayError as exc:
        outcome.status, outcome.error = FAILED, exc.message
        outcome.attempts = sum(1 for a in exc.attempts if a.kind != "skipped")
        _save(message_id, outcome)
        return
    status, error = 500, "internal error while streaming"
    try:
        status, error = _relay(session, message_id, outcome)
    except StreamInterrupted as exc:
        status, error = 502, exc.message
        outcome.status, outcome.error = FAILED, exc.message
    finally:
        if status == 500:
            outcome.status, outcome.error = FAILED, "The gateway failed while writing this answer; see the logs."
        session.close()
        usage = session.produced_usage()
        outcome.cost = turn.served(session.model, session.attempts, usage, status, error) or 0
        outcome.model, outcome.usage = session.model.id, usage
        outcome.attempts = sum(1 for a in session.attempts if a.kind != "skipped")
        _save(message_id, outcome)


def _relay(session, message_id, outcome):
    """Collect the text, writing it every FLUSH_S; returns the log's (status, error)."""
    flushed = time.monotonic()
    for chunk in session:
        choices = chunk.get("choices") or ()
        piece = (choices[0].get("delta") or {}).get("content") if choices else None
        if piece:
            outcome.pieces.append(piece)
        if time.monotonic() - flushed >= FLUSH_S:
            flushed = time.monotonic()
            if _flush(message_id, outcome):
                outcome.status, outcome.error = STOPPED, STOPPED_NOTE
                return 499, "stopped by the user"
    return 200, None


def _flush(message_id, outcome):
    """Write the text so far; True when the answer should stop (Stop pressed, or the row deleted)."""
    begin_write()
    stop = db.session.execute(sa.update(ChatMessage).where(ChatMessage.id == message_id)
                              .values(content="".join(outcome.pieces), heartbeat_at=utcnow())
                              .returning(ChatMessage.stop_requested)).scalar()
    db.session.commit()
    return stop is not False


def _save(message_id, outcome):
    begin_write()
    message = db.session.get(ChatMessage, message_id)
    if message is None:                 # the conversation was deleted while it was written
        db.session.rollback()
        return
    message.content = "".join(outcome.pieces)
    message.status, message.error = outcome.status, outcome.error
    message.model, message.attempts, message.cost = outcome.model, outcome.attempts, outcome.cost
    message.prompt_tokens = int(outcome.usage.get("prompt_tokens") or 0)
    message.completion_tokens = int(outcome.usage.get("completion_tokens") or 0)
    db.session.commit()
