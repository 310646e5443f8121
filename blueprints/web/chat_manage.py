"""Keeping conversations: rename, per-conversation settings, delete with undo, and search.

Delete only marks a conversation; the page then offers Undo for UNDO_S, after which the
conversation is purged (with the owner's next delete or new conversation), so one click never loses one.
"""
import math
from datetime import timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from blueprints.web.chat import MAX_MESSAGE, bp, conversation_list, owned_conversation
from extensions import db
from models.conversation import Conversation, matching, purge_deleted
from models.user import utcnow

UNDO_S = 30
TITLE_MAX = 120
SEARCH_MAX = 200
MAX_TOKENS_LIMIT = 128_000
FOUND = 50


@bp.post("/<int:conversation_id>/rename")
def rename(conversation_id):
    conversation = owned_conversation(conversation_id)
    title = " ".join(request.form.get("title", "").split())
    if not title or len(title) > TITLE_MAX:
        flash(f"A title is 1 to {TITLE_MAX} characters; the conversation keeps its name.", "error")
    else:
        conversation.title = title
        db.session.commit()
    return redirect(url_for("chat.show", conversation_id=conversation.id))


@bp.post("/<int:conversation_id>/settings")
def settings(conversation_id):
    """Save the system prompt, temperature and max tokens; a bad value changes nothing and says why."""
    conversation = owned_conversation(conversation_id)
    values, error = parse_settings(request.form)
    if error is None:
        conversation.system_prompt, conversation.temperature, conversation.max_tokens = values
        db.session.commit()
    return render_template("chat/_settings.html", conversation=conversation, form=request.form, error=error,
                           saved=error is None), 200 if error is None else 422


def parse_settings(form):
    """((system prompt, temperature or None, max tokens or None), None), or (None, the error)."""
    system_prompt = form.get("system_prompt", "").strip()
    if len(system_prompt) > MAX_MESSAGE:
        return None, f"The system prompt is limited to {MAX_MESSAGE:,} characters."
    temperature, max_tokens = form.get("temperature", "").strip(), form.get("max_tokens", "").strip()
    try:
        temperature = float(temperature) if temperature else None
    except ValueError:
        temperature = math.nan
    if temperature is not None and not 0 <= temperature <= 2:
        return None, "Temperature is a number from 0 to 2 (or empty for the model's default)."
    if max_tokens and not (max_tokens.isdigit() and 1 <= int(max_tokens) <= MAX_TOKENS_LIMIT):
        return None, f"Max tokens is a whole number from 1 to {MAX_TOKENS_LIMIT:,} (or empty for the default)."
    return (system_prompt, temperature, int(max_tokens) if max_tokens else None), None


@bp.post("/<int:conversation_id>/delete")
def delete(conversation_id):
    """Mark it deleted and offer Undo; conversations whose undo window is over are purged now."""
    conversation = owned_conversation(conversation_id)
    now = utcnow()
    conversation.deleted_at = now
    purge_expired()
    db.session.commit()
    return redirect(url_for("chat.index", undo=conversation.id))


@bp.post("/<int:conversation_id>/restore")
def restore(conversation_id):
    """Undo a delete, while its window is open (after it, the conversation is as good as gone: 404)."""
    conversation = restorable(conversation_id) or abort(404)
    conversation.deleted_at = None
    db.session.commit()
    return redirect(url_for("chat.show", conversation_id=conversation.id))


def purge_expired():
    """Purge the current user's conversations whose undo window is over (the caller commits)."""
    purge_deleted(current_user.id, utcnow() - timedelta(seconds=UNDO_S))


def restorable(conversation_id):
    """The current user's conversation deleted less than UNDO_S ago, else None."""
    conversation = db.session.get(Conversation, conversation_id) if conversation_id else None
    if (conversation is None or conversation.user_id != current_user.id or conversation.deleted_at is None
            or seconds_left(conversation) <= 0):
        return None
    return conversation


def seconds_left(conversation):
    """How long Undo is still offered for a deleted conversation."""
    return math.ceil(UNDO_S - (utcnow() - conversation.deleted_at).total_seconds())


@bp.get("/search")
def search():
    """The sidebar's list, limited to conversations whose title or text contains the words."""
    words = " ".join(request.args.get("q", "").split())[:SEARCH_MAX]
    current = request.args.get("current", type=int)
    found = db.session.scalars(matching(current_user.id, words).limit(FOUND)).all() if words else conversation_list()
    return render_template("chat/_conversations.html", conversations=found, conversation=None, current_id=current,
                           searched=words)
