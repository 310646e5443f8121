"""Gateway API keys: stored as a SHA-256 hash plus a display prefix; the key is shown once."""
import hashlib
import secrets
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from extensions import db
from models.user import utcnow

KEY_PREFIX = "sk-"
MAX_RPM = 1_000_000           # a key's own requests-per-minute limit goes up to this


def hash_key(raw):
    """Keys carry 256 random bits, so a plain SHA-256 is the right store (no slow KDF needed)."""
    return hashlib.sha256(raw.encode()).hexdigest()


def looks_like_key(raw):
    return raw.startswith(KEY_PREFIX) and 35 <= len(raw) <= 100 and raw.isascii()


class ApiKey(db.Model):
    __tablename__ = "api_keys"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"), index=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(100), default="default")
    key_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    display_prefix: so.Mapped[str] = so.mapped_column(sa.String(16))
    last4: so.Mapped[str] = so.mapped_column(sa.String(4))
    status: so.Mapped[str] = so.mapped_column(sa.String(16), default="active")   # active | disabled | revoked
    group: so.Mapped[str] = so.mapped_column(sa.String(32), default="default")
    model_limits: so.Mapped[list] = so.mapped_column(sa.JSON, default=list)
    allow_ips: so.Mapped[list] = so.mapped_column(sa.JSON, default=list)
    rpm: so.Mapped[int | None] = so.mapped_column()      # the key's own requests per minute, else [limits] key_per_minute
    unlimited_quota: so.Mapped[bool] = so.mapped_column(default=True)
    remain_quota: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)    # micro-USD the key may still spend
    used_quota: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    reserved_quota: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    expires_at: so.Mapped[datetime | None] = so.mapped_column()
    last_used_at: so.Mapped[datetime | None] = so.mapped_column()

    user = so.relationship("User")

    @classmethod
    def issue(cls, user, name="default"):
        """Create a key; returns (row, raw key). The raw key is never stored."""
        raw = KEY_PREFIX + secrets.token_urlsafe(32)
        row = cls(user_id=user.id, name=name, key_hash=hash_key(raw), display_prefix=raw[:7], last4=raw[-4:],
                  model_limits=[], allow_ips=[])
        db.session.add(row)
        return row, raw

    @property
    def masked(self):
        return f"{self.display_prefix}…{self.last4}"

    def usable_now(self, now=None):
        now = now or utcnow()
        return self.status == "active" and (self.expires_at is None or self.expires_at > now)
