"""Accounts: web login and owner of gateway keys."""
from datetime import datetime, timezone

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_login import UserMixin

from extensions import db
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
