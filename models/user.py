"""Accounts: web login and owner of gateway keys."""
from datetime import datetime, timezone

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_login import UserMixin

from extensions import begin_write, db
from models import passwords


def utcnow():
    return datetime.now(timezone.utc).replace(tzinfo=None)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    username: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True, index=True)
    email: so.Mapped[str | None] = so.mapped_column(sa.String(255))
    password_hash: so.Mapped[str] = so.mapped_column(sa.String(255))
    role: so.Mapped[str] = so.mapped_column(sa.String(16), default="user")
    disabled: so.Mapped[bool] = so.mapped_column(default=False)
    balance: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)     # micro-USD; = sum of the ledger
    reserved: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)    # held for requests in flight
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    @property
    def is_admin(self):
        return self.role == "admin"

    @property
    def is_active(self):
        return not self.disabled

    def set_password(self, password):
        """Hash with werkzeug's scrypt default (salted, slow), off the gevent loop."""
        self.password_hash = passwords.hash_password(password)

    def check_password(self, password):
        return passwords.verify(self.password_hash, password)


class AccessRefused(Exception):
    """A role or status change that would lock the gateway's administrators out; nothing was changed."""


def change_access(user, actor_id, role=None, disabled=None):
    """Set `user`'s role and/or disabled flag, in the caller's transaction (the caller commits).

    Never leaves the gateway without an active administrator, even when two admins demote each other
    at once: the active admins' rows are locked (SQLite: the write lock) before they are counted.

    :raise AccessRefused: an admin demoting or disabling themselves, or the last active admin.
    """
    role = user.role if role is None else role
    disabled = user.disabled if disabled is None else disabled
    loses_admin = user.is_admin and not user.disabled and (role != "admin" or disabled)
    if loses_admin and user.id == actor_id:
        raise AccessRefused("You cannot demote or disable yourself: ask another administrator.")
    begin_write()
    admins = db.session.scalars(sa.select(User.id).where(User.role == "admin", User.disabled.is_(False))
                                .with_for_update()).all()
    if loses_admin and set(admins) <= {user.id}:
        raise AccessRefused(f"{user.username} is the last active administrator: promote someone else first.")
    user.role, user.disabled = role, disabled
