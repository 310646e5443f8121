"""A server-side record of each browser login, so that logging out really ends it.

Flask's session is a signed cookie: with nothing kept on the server, a cookie copied before
logout would still be accepted after it. Each login writes a row keyed by the hash of a random
token that only the cookie carries; every page checks the row, and logout deletes it.
"""
import hashlib
import secrets
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from extensions import db
from models.user import utcnow


class LoginSession(db.Model):
    __tablename__ = "login_sessions"

    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"), index=True)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


def _hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


def start(user_id):
    """Record a new login in the caller's transaction; returns the token for the session cookie."""
    token = secrets.token_urlsafe(32)
    db.session.add(LoginSession(token_hash=_hash(token), user_id=user_id))
    return token


def is_live(token, user_id):
    """True while the login `token` of `user_id` has not been ended."""
    if not isinstance(token, str) or not token:
        return False
    return db.session.scalar(sa.select(LoginSession.user_id).where(LoginSession.token_hash == _hash(token))) == user_id


def end(token):
    """Forget one login (logout); the caller commits."""
    if isinstance(token, str) and token:
        db.session.execute(sa.delete(LoginSession).where(LoginSession.token_hash == _hash(token)))


def end_all(user_id):
    """Forget every login of `user_id` (the account was disabled); the caller commits."""
    db.session.execute(sa.delete(LoginSession).where(LoginSession.user_id == user_id))
