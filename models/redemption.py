"""Redemption codes: admins create them in batches (or as seed 003's packages); a user redeems one once.

A code is a secret like an API key, so only its hash is stored. Redeeming is one conditional
UPDATE (`WHERE redeemed_by IS NULL`) in the same transaction as the ledger grant, so two
concurrent redemptions of one code can never both succeed.
"""
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from extensions import begin_write, db
from gateway import pricing
from models import credit
from models.user import utcnow

CODE_PREFIX = "gw-"
# Seed 003's packages: price in USD -> credits received (bonus included).
PACKAGES = {"5": 5.0, "10": 10.0, "25": 27.5, "50": 57.5, "100": 120.0}
MIN_CODE_CREDITS, MAX_CODE_CREDITS = 0.01, 1_000_000


class CodeNotRedeemable(Exception):
    """Unknown, already used or disabled code (one message for all: codes cannot be probed)."""


def hash_code(raw):
    return hashlib.sha256(raw.strip().encode()).hexdigest()


class RedemptionCode(db.Model):
    __tablename__ = "redemption_codes"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    code_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    last4: so.Mapped[str] = so.mapped_column(sa.String(4))
    batch: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    amount: so.Mapped[int] = so.mapped_column(sa.BigInteger)                 # micro-USD granted
    created_by: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    redeemed_by: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"), index=True)
    redeemed_at: so.Mapped[datetime | None] = so.mapped_column()

    @classmethod
    def create_batch(cls, amount, count, batch="", created_by=None):
        """Create `count` codes worth `amount` micro-USD each; returns the raw codes (shown once)."""
        raws = [CODE_PREFIX + secrets.token_urlsafe(18) for _ in range(count)]
        db.session.add_all(cls(code_hash=hash_code(raw), last4=raw[-4:], batch=batch[:100], amount=amount,
                               created_by=created_by) for raw in raws)
        return raws


@dataclass(frozen=True)
class Package:
    """One seed-003 package as the pages show it: its USD price, the credits it grants, the bonus."""
    key: str
    price: int             # micro-USD paid
    credits: int           # micro-USD granted
    bonus_percent: int


def packages():
    """The packages, cheapest first."""
    return [Package(key, pricing.from_credits(key), pricing.from_credits(value), round((value / float(key) - 1) * 100))
            for key, value in sorted(PACKAGES.items(), key=lambda item: float(item[0]))]


def code_value(amount=None, package=None):
    """Micro-USD each new code grants: a package's credits (bonus included) or an explicit amount.

    Shared by `flask credits codes` and /admin/codes, so both read an order the same way.

    :raise ValueError: both or neither given, an unknown package, or an amount out of range.
    """
    has_amount = amount is not None and str(amount).strip() != ""
    if has_amount == bool(package):
        raise ValueError("give exactly one of an amount or a package")
    if package:
        if package not in PACKAGES:
            raise ValueError(f"unknown package {package!r} (one of {', '.join(PACKAGES)})")
        return pricing.from_credits(PACKAGES[package])
    micro = pricing.from_credits(amount)
    if not pricing.from_credits(MIN_CODE_CREDITS) <= micro <= pricing.from_credits(MAX_CODE_CREDITS):
        raise ValueError(f"a code is worth between {MIN_CODE_CREDITS} and {MAX_CODE_CREDITS:,} credits")
    return micro


def batch_label(batch, package=None):
    """The label stored on a batch: the admin's own, else the package it was sold as."""
    return (batch or "").strip()[:100] or (f"package {package}" if package else "")


def redeem(raw, user_id):
    """Mark the code used by `user_id` and grant its value, atomically; returns the amount.

    :raise CodeNotRedeemable: the code is unknown or was already redeemed.
    """
    begin_write()
    amount = db.session.execute(
        sa.update(RedemptionCode).where(RedemptionCode.code_hash == hash_code(raw), RedemptionCode.redeemed_by.is_(None))
        .values(redeemed_by=user_id, redeemed_at=utcnow()).returning(RedemptionCode.amount)).scalar_one_or_none()
    if amount is None:
        db.session.rollback()
        raise CodeNotRedeemable()
    credit.grant(user_id, amount, kind="redeem", description="redemption code")
    db.session.commit()
    return amount
