"""Which models the chat picker offers, which one a user starts with, and which need the user's own key.

A model whose provider has no operator keys can only be served with the user's own provider key;
the chat says so in the picker and refuses it before routing when the user has none, rather than
letting failover answer with some other provider's model (chat_generation pins such a model).
"""
import sqlalchemy as sa
from flask import current_app
from flask_login import current_user

from extensions import db
from gateway import pricing
from models import UserProviderKey
from models.user import utcnow


def _catalog():
    return current_app.extensions["gateway"]


def offered():
    """Ids of the chat models the picker offers, in catalog order."""
    return [m.id for m in _catalog().catalog.visible() if m.kind == "chat"]


def default(models):
    """A new conversation's model: the first one the user can use, and while they have no credit the
    first free one (the demo model, when it is enabled), so that a new user's first question is answered."""
    usable = [m for m in models if not needs_own_key(m) or has_own_key(m)]
    if current_user.balance <= 0:
        settings = _catalog().settings.models
        usable = [m for m in usable if pricing.cost(settings[m], 1, 1) == 0] or usable
    return (usable or models or [""])[0]


def needs_own_key(model_id):
    """True when the model's provider has no operator keys (the demo provider needs none)."""
    settings = _catalog().settings
    model = settings.models.get(model_id)
    if model is None:
        return False
    provider = settings.providers[model.provider]
    return provider.type != "demo" and not provider.keys


def has_own_key(model_id):
    """True when the current user has a usable key of their own for the model's provider."""
    provider = _catalog().settings.models[model_id].provider
    keys = db.session.scalars(sa.select(UserProviderKey).where(UserProviderKey.user_id == current_user.id,
                                                               UserProviderKey.provider_name == provider)).all()
    now = utcnow()
    return any(key.usable(now) for key in keys)


def label(model_id):
    """The picker's text for a model: its id, marked when it runs on the user's own key."""
    return f"{model_id} (your key)" if needs_own_key(model_id) else model_id
