"""/chat: a user's conversations, the model picker, and posting a question.

Posting saves the question and the answer to come, starts its generation in the background
(chat_generation) and returns both bubbles; the answer's bubble follows it over SSE (chat_stream).
"""
import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from htmx_flask import make_response as htmx_response

from blueprints.web.markdown import render_markdown
from blueprints.web.security import protect
from extensions import db
from gateway import pricing
from models.conversation import STREAMING, ChatMessage, Conversation
from models.user import utcnow

bp = protect(Blueprint("chat", __name__, url_prefix="/chat"))
MAX_MESSAGE = 32_000
TITLE_LENGTH = 60


@bp.before_request
@login_required
def require_login():
    """Conversations are private: every view here needs a signed-in user."""


@bp.app_template_filter("markdown")
def markdown_filter(text):
    return render_markdown(text)


@bp.app_template_filter("credits")
def credits_filter(micro):
    return f"{pricing.to_credits(micro or 0):.6f}".rstrip("0").rstrip(".")


def chat_models():
    """Chat models the picker offers, in catalog order."""
    return [m.id for m in current_app.extensions["gateway"].catalog.visible() if m.kind == "chat"]


def owned_conversation(conversation_id):
    """The current user's conversation, else 404 (another user's id looks exactly like a missing one)."""
    conversation = db.session.scalar(sa.select(Conversation).where(Conversation.id == conversation_id,
                                                                   Conversation.user_id == current_user.id))
    if conversation is None:
        abort(404)
    return conversation


@bp.get("")
def index():
    """The newest conversation, or an empty state that offers to start one."""
    conversations = _conversations()
    if conversations:
        return redirect(url_for("chat.show", conversation_id=conversations[0].id))
    return render_template("chat/index.html", conversations=[], conversation=None, models=chat_models())


@bp.post("/new")
def new():
    models = chat_models()
    model = request.form.get("model") or (models[0] if models else "")
    conversation = Conversation(user_id=current_user.id, model=model if model in models else "")
    db.session.add(conversation)
    db.session.commit()
    return redirect(url_for("chat.show", conversation_id=conversation.id))


@bp.get("/<int:conversation_id>")
def show(conversation_id):
    conversation = owned_conversation(conversation_id)
    return render_template("chat/index.html", conversations=_conversations(), conversation=conversation,
                           models=chat_models())


@bp.post("/<int:conversation_id>/delete")
def delete(conversation_id):
    db.session.delete(owned_conversation(conversation_id))
    db.session.commit()
    flash("Conversation deleted.", "success")
    return redirect(url_for("chat.index"))


@bp.post("/<int:conversation_id>/messages")
def post_message(conversation_id):
    """Save the question and the answer to come, and start writing the answer."""
    conversation = owned_conversation(conversation_id)
    content = request.form.get("content", "").strip()
    model = request.form.get("model", "")
    error = _message_error(content, model)
    if error:
        if request.htmx:
            return htmx_response(render_template("chat/_composer_error.html", error=error), 422,
                                 retarget="#composer-error", reswap="innerHTML")
        flash(error, "error")
        return redirect(url_for("chat.show", conversation_id=conversation.id))
    if not any(m.role == "user" for m in conversation.messages):
        conversation.title = content.splitlines()[0][:TITLE_LENGTH]
    question = ChatMessage(role="user", content=content)
    answer = ChatMessage(role="assistant", status=STREAMING, requested_model=model, heartbeat_at=utcnow())
    conversation.messages.extend([question, answer])
    conversation.model, conversation.updated_at = model, utcnow()
    db.session.commit()
    chat_generation.start(current_app._get_current_object(), answer)
    if not request.htmx:
        return redirect(url_for("chat.show", conversation_id=conversation.id))
    return render_template("chat/_posted.html", messages=[question, answer], conversation=conversation,
                           conversations=_conversations())


def _message_error(content, model):
    if not content:
        return "Type a message first."
    if len(content) > MAX_MESSAGE:
        return f"Messages are limited to {MAX_MESSAGE:,} characters."
    if model not in chat_models():
        return "Pick a model from the list."
    return None


def _conversations():
    return db.session.scalars(sa.select(Conversation).where(Conversation.user_id == current_user.id)
                              .order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(100)).all()


from blueprints.web import chat_generation, chat_stream  # noqa: E402,F401  (the stream routes register on bp)
