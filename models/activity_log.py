"""What happened to a user's provider keys, by hand or by automatic failover (seed 001)."""
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from extensions import db
from models.user import utcnow

ACTIONS = ("ADD", "DELETE", "SELECT", "UNSELECT", "IMPORT", "INVALID", "COOLDOWN", "TEST")


class ActivityLog(db.Model):
    __tablename__ = "activity_logs"
    __table_args__ = (sa.Index("ix_activity_logs_user_id", "user_id", "id"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    action: so.Mapped[str] = so.mapped_column(sa.String(16))
    provider_name: so.Mapped[str] = so.mapped_column(sa.String(64))
    key_id: so.Mapped[int | None] = so.mapped_column()
    description: so.Mapped[str] = so.mapped_column(sa.String(500))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)

    def as_json(self):
        return {"id": f"log_{self.id}", "user_id": str(self.user_id), "action": self.action,
                "provider_name": self.provider_name, "key_id": f"pk_{self.key_id}" if self.key_id else None,
                "description": self.description, "created_at": self.created_at.isoformat(timespec="milliseconds") + "Z"}


def record(user_id, action, provider_name, key_id, description):
    """Add one row to the caller's transaction."""
    db.session.add(ActivityLog(user_id=user_id, action=action, provider_name=provider_name, key_id=key_id,
                               description=description[:500]))
