"""A user's own provider keys (seed 001): encrypted at rest, one selected per provider."""
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from extensions import db
from models.user import utcnow

ACTIVE, INVALID = "active", "invalid"


class UserProviderKey(db.Model):
    __tablename__ = "provider_keys"
    __table_args__ = (sa.Index("ix_provider_keys_user_provider", "user_id", "provider_name"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    provider_name: so.Mapped[str] = so.mapped_column(sa.String(64))
    name: so.Mapped[str] = so.mapped_column(sa.String(100))
    ciphertext: so.Mapped[str] = so.mapped_column(sa.Text)             # Fernet token; never the key itself
    last4: so.Mapped[str] = so.mapped_column(sa.String(4))
    base_url: so.Mapped[str | None] = so.mapped_column(sa.String(500))  # optional own endpoint, SSRF-checked
    is_selected: so.Mapped[bool] = so.mapped_column(default=False)
    status: so.Mapped[str] = so.mapped_column(sa.String(16), default=ACTIVE)   # active | invalid (401/403)
    cooldown_until: so.Mapped[datetime | None] = so.mapped_column()            # after a 429
    last_error: so.Mapped[str | None] = so.mapped_column(sa.String(300))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    @property
    def public_id(self):
        return f"pk_{self.id}"

    @property
    def masked(self):
        return f"…{self.last4}"

    def usable(self, now=None):
        now = now or utcnow()
        return self.status == ACTIVE and (self.cooldown_until is None or self.cooldown_until <= now)

    def as_json(self):
        """Seed 001's key object: the key itself is never echoed."""
        return {"id": self.public_id, "provider_name": self.provider_name, "name": self.name,
                "is_selected": self.is_selected, "status": self.status, "key_hint": self.masked,
                "base_url": self.base_url, "created_at": self.created_at.isoformat(timespec="milliseconds") + "Z"}


def parse_public_id(public_id):
    """`pk_12` → 12, anything else → None (so a malformed id is a plain 404).

    ASCII digits only (`int("²")` fails), and at most 9 of them: a longer id would overflow
    PostgreSQL's 32-bit integer column and answer 500 instead of 404.
    """
    digits = public_id[3:] if isinstance(public_id, str) and public_id.startswith("pk_") else ""
    if digits.isascii() and digits.isdigit() and len(digits) <= 9:
        return int(digits)
    return None
