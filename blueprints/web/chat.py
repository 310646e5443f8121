"""/chat: a user's conversations, the model picker, and asking (a question, again, or edited).

Asking saves the question and the answer to come, starts its generation in the background
(chat_generation) and returns both bubbles; the answer's bubble follows it over SSE (chat_stream).
Renaming, settings, delete/undo and search are in chat_manage; which models the picker offers
and who may use them, in chat_models.
"""
import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from htmx_flask import make_response as htmx_response
from markupsafe import Markup, escape

from blueprints.web import chat_models
from blueprints.web.markdown import plain_text, render_markdown
from blueprints.web.security import protect
from extensions import db
from gateway import pricing
from models.conversation import FINAL, STREAMING, ChatMessage, Conversation, listed, unused
from models.user import utcnow

bp = protect(Blueprint("chat", __name__, url_prefix="/chat"))
MAX_MESSAGE = 32_000
TITLE_LENGTH = 60
LISTED = 100


@bp.before_request
@login_required
def require_login():
    """Conversations are private: every view here needs a signed-in user."""


@bp.app_template_filter("markdown")
def markdown_filter(text, typed=False):
    return render_markdown(text, typed)


@bp.app_template_filter("model_label")
def model_label_filter(model_id):
    return chat_models.label(model_id)


@bp.app_template_filter("credits")
def credits_filter(micro):
    return f"{pricing.to_credits(micro or 0):.6f}".rstrip("0").rstrip(".")


def owned_conversation(conversation_id, deleted=False):
    """The current user's conversation (a deleted one only when asked for), else 404 (another
    user's id looks exactly like a missing one)."""
    conversation = db.session.scalar(sa.select(Conversation).where(
        Conversation.id == conversation_id, Conversation.user_id == current_user.id,
        Conversation.deleted_at.is_not(None) if deleted else Conversation.deleted_at.is_(None)))
    if conversation is None:
        abort(404)
    return conversation


@bp.get("")
def index():
    """The newest conversation, or an empty state that offers to start one."""
    conversations = conversation_list()
    if conversations:
        return redirect(url_for("chat.show", conversation_id=conversations[0].id, **request.args))
    return render_page(None, [])


@bp.post("/new")
def new():
    """Start a conversation, or reuse the one still empty, so "New conversation" never piles them up."""
    models = chat_models.offered()
    model = request.form.get("model") or chat_models.default(models)
    conversation = db.session.scalar(unused(current_user.id)) or Conversation(user_id=current_user.id)
    conversation.model = model if model in models else chat_models.default(models)
    conversation.updated_at = utcnow()
    db.session.add(conversation)
    chat_manage.purge_expired()
    db.session.commit()
    return redirect(url_for("chat.show", conversation_id=conversation.id))


@bp.get("/<int:conversation_id>")
def show(conversation_id):
    return render_page(owned_conversation(conversation_id), conversation_list())


def render_page(conversation, conversations):
    """The chat page; the empty state preselects the model a new user can use (chat_models.default)."""
    models = chat_models.offered()
    undo = chat_manage.restorable(request.args.get("undo", type=int))
    return render_template("chat/index.html", conversations=conversations, conversation=conversation,
                           models=models, default_model=None if conversation else chat_models.default(models),
                           undo=undo, undo_seconds=chat_manage.seconds_left(undo) if undo else 0)


@bp.post("/<int:conversation_id>/messages")
def post_message(conversation_id):
    """Save the question and the answer to come, and start writing the answer."""
    conversation = owned_conversation(conversation_id)
    content, model = request.form.get("content", "").strip(), request.form.get("model", "")
    error = _question_error(content) or _asking_error(conversation, model)
    if error:
        return _refused(conversation, error)
    question, answer = _ask(conversation, content, model)
    if not request.htmx:
        return redirect(url_for("chat.show", conversation_id=conversation.id))
    return render_template("chat/_posted.html", messages=[question, answer], conversation=conversation,
                           conversations=conversation_list())


@bp.post("/<int:conversation_id>/regenerate")
def regenerate(conversation_id):
    """Write the last answer again (with the conversation's model); the old one is replaced."""
    conversation = owned_conversation(conversation_id)
    model = request.form.get("model") or conversation.model
    last = conversation.messages[-1] if conversation.messages else None
    error = ("There is no answer to regenerate." if last is None or last.role != "assistant" else None) \
        or _asking_error(conversation, model)
    if error:
        return _refused(conversation, error)
    conversation.messages.remove(last)
    _start(conversation, model)
    return redirect(url_for("chat.show", conversation_id=conversation.id))


@bp.post("/<int:conversation_id>/messages/<int:message_id>/edit")
def edit(conversation_id, message_id):
    """Ask an earlier question again, changed: it and every later turn are replaced."""
    conversation = owned_conversation(conversation_id)
    question = next((m for m in conversation.messages if m.id == message_id and m.role == "user"), None)
    if question is None:
        abort(404)
    content, model = request.form.get("content", "").strip(), request.form.get("model") or conversation.model
    error = _question_error(content) or _asking_error(conversation, model)
    if error:
        return _refused(conversation, error)
    for later in [m for m in conversation.messages if m.id >= message_id]:
        conversation.messages.remove(later)
    _ask(conversation, content, model)
    return redirect(url_for("chat.show", conversation_id=conversation.id))


def _ask(conversation, content, model):
    if not any(m.role == "user" for m in conversation.messages):
        first_line = next((text for text in map(plain_text, content.splitlines()) if text), "New conversation")
        conversation.title = first_line if len(first_line) <= TITLE_LENGTH else first_line[:TITLE_LENGTH - 1] + "…"
    question = ChatMessage(role="user", content=content)
    conversation.messages.append(question)
    return question, _start(conversation, model)


def _start(conversation, model):
    """Commit a `streaming` answer for `model` and start writing it."""
    answer = ChatMessage(role="assistant", status=STREAMING, requested_model=model, heartbeat_at=utcnow())
    conversation.messages.append(answer)
    conversation.model, conversation.updated_at = model, utcnow()
    db.session.commit()
    chat_generation.start(current_app._get_current_object(), answer, pinned=chat_models.needs_own_key(model))
    return answer


def _refused(conversation, error):
    """A refused question changes nothing: the composer shows why (with a link when one helps)."""
    if request.htmx and request.endpoint == "chat.post_message":
        return htmx_response(render_template("chat/_composer_error.html", error=error), 422,
                             retarget="#composer-error", reswap="innerHTML")
    flash(error, "error")
    return redirect(url_for("chat.show", conversation_id=conversation.id))


def _question_error(content):
    if not content:
        return "Type a message first."
    if len(content) > MAX_MESSAGE:
        return f"Messages are limited to {MAX_MESSAGE:,} characters."
    return None


def _asking_error(conversation, model):
    """Why a new answer cannot be started now, else None."""
    if model not in chat_models.offered():
        return "Pick a model from the list."
    if any(m.status not in FINAL for m in conversation.messages):
        return "An answer is still being written: wait for it, or press Stop, before asking again."
    if chat_models.needs_own_key(model) and not chat_models.has_own_key(model):
        return Markup(f"{escape(model)} is served only with your own provider key, and you have none for it. "
                      f'<a href="{url_for("provider_keys_page.index")}">Add one on Provider keys</a> '
                      "or pick another model.")
    return None


def conversation_list():
    return db.session.scalars(listed(current_user.id).limit(LISTED)).all()


from blueprints.web import chat_generation, chat_manage, chat_stream  # noqa: E402,F401  (their routes register on bp)
