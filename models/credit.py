"""The credit ledger: integer micro-USD, one row per balance change, guarded conditional updates.

Balance and reservations live on the user row; every change of `balance` writes exactly one
ledger row with `balance_after`, in the same transaction, so the balance always equals the sum
of the ledger. Reservations only move `reserved`, never `balance`. Every update is a single
conditional UPDATE (`WHERE balance - reserved >= :amount`), never read-then-write, so N
concurrent requests in any number of workers can never spend more than the balance.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so

from extensions import db
from models.api_key import ApiKey
from models.user import User, utcnow

HELD, SETTLED, RELEASED = "held", "settled", "released"


class CreditTransaction(db.Model):
    __tablename__ = "credit_transactions"
    __table_args__ = (sa.Index("ix_credit_tx_user_id", "user_id", "id"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    amount: so.Mapped[int] = so.mapped_column(sa.BigInteger)          # micro-USD, signed
    balance_after: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    kind: so.Mapped[str] = so.mapped_column(sa.String(16))            # grant | charge | redeem
    request_id: so.Mapped[str | None] = so.mapped_column(sa.String(40), unique=True)
    description: so.Mapped[str] = so.mapped_column(sa.String(300), default="")
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


class Reservation(db.Model):
    """Worst-case cost held for one request until it is settled or released (exactly once)."""
    __tablename__ = "reservations"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    request_id: so.Mapped[str] = so.mapped_column(sa.String(40), unique=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    api_key_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("api_keys.id"))
    amount: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    status: so.Mapped[str] = so.mapped_column(sa.String(10), default=HELD, index=True)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)


@dataclass
class InsufficientCredit(Exception):
    """402: which limit refused the reservation, and the numbers (micro-USD)."""
    limit_source: str          # user_balance | key_quota
    needed: int
    available: int


def reserve(request_id, user_id, key_id, amount):
    """Hold `amount` against the user's balance and the key's quota, or raise InsufficientCredit."""
    if amount <= 0:
        return False
    held = db.session.execute(sa.update(User).where(User.id == user_id, User.balance - User.reserved >= amount)
                              .values(reserved=User.reserved + amount))
    if held.rowcount != 1:
        db.session.rollback()
        raise InsufficientCredit("user_balance", amount, available_balance(user_id))
    if key_id is not None:
        key_held = db.session.execute(
            sa.update(ApiKey).where(ApiKey.id == key_id, sa.or_(ApiKey.unlimited_quota.is_(True),
                                                                ApiKey.remain_quota - ApiKey.reserved_quota >= amount))
            .values(reserved_quota=ApiKey.reserved_quota + amount))
        if key_held.rowcount != 1:
            db.session.rollback()
            key = db.session.get(ApiKey, key_id)
            raise InsufficientCredit("key_quota", amount, max(0, key.remain_quota - key.reserved_quota))
    db.session.add(Reservation(request_id=request_id, user_id=user_id, api_key_id=key_id, amount=amount))
    db.session.commit()
    return True


def settle(request_id, user_id, key_id, cost, description):
    """Charge the real cost once and free the reservation, in the caller's transaction.

    Returns (micro-USD charged, micro-USD available after), or (0, None) for a free request
    that held nothing. The charge never takes the balance below zero. The caller commits.
    """
    amount = _close_reservation(request_id, SETTLED)
    if amount is None and cost <= 0:
        return 0, None
    balance, reserved = db.session.execute(
        sa.update(User).where(User.id == user_id).values(reserved=User.reserved - (amount or 0))
        .returning(User.balance, User.reserved)).one()
    charge = max(0, min(cost, balance))
    if charge:
        balance = db.session.execute(sa.update(User).where(User.id == user_id)
                                     .values(balance=User.balance - charge).returning(User.balance)).scalar_one()
        db.session.add(CreditTransaction(user_id=user_id, amount=-charge, balance_after=balance, kind="charge",
                                         request_id=request_id, description=description[:300]))
    if key_id is not None:
        db.session.execute(sa.update(ApiKey).where(ApiKey.id == key_id).values(
            reserved_quota=ApiKey.reserved_quota - (amount or 0), used_quota=ApiKey.used_quota + charge,
            remain_quota=sa.case((ApiKey.unlimited_quota.is_(True), ApiKey.remain_quota),
                                 else_=ApiKey.remain_quota - charge)))
    return charge, max(0, balance - reserved)


def release(request_id):
    """Give a failed request's reservation back; nothing is charged, no ledger row is written."""
    reservation = db.session.scalar(sa.select(Reservation).where(Reservation.request_id == request_id))
    if reservation is None or _close_reservation(request_id, RELEASED) is None:
        db.session.rollback()
        return
    _unhold(reservation)
    db.session.commit()


def sweep(older_than_s):
    """Release reservations left behind by a killed worker; returns how many were released."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    stale = db.session.scalars(sa.select(Reservation.request_id)
                               .where(Reservation.status == HELD, Reservation.created_at < cutoff)).all()
    for request_id in stale:
        release(request_id)
    return len(stale)


def grant(user_id, amount, kind="grant", description=""):
    """Add credit (or take it back with a negative amount, never below what is available); one ledger row.

    :raise InsufficientCredit: a negative amount larger than the available balance.
    """
    guard = [User.id == user_id] + ([User.balance - User.reserved >= -amount] if amount < 0 else [])
    balance_after = db.session.execute(sa.update(User).where(*guard).values(balance=User.balance + amount)
                                       .returning(User.balance)).scalar_one_or_none()
    if balance_after is None:
        db.session.rollback()
        raise InsufficientCredit("user_balance", -amount, available_balance(user_id))
    db.session.add(CreditTransaction(user_id=user_id, amount=amount, balance_after=balance_after, kind=kind,
                                     description=description[:300]))
    return balance_after


def available_balance(user_id):
    row = db.session.execute(sa.select(User.balance, User.reserved).where(User.id == user_id)).one()
    return max(0, row.balance - row.reserved)


def _close_reservation(request_id, status):
    """Flip held → status exactly once; returns the held amount, or None if there was none."""
    closed = db.session.execute(sa.update(Reservation).where(Reservation.request_id == request_id,
                                                             Reservation.status == HELD)
                                .values(status=status).returning(Reservation.amount)).scalar_one_or_none()
    return closed


def _unhold(reservation):
    db.session.execute(sa.update(User).where(User.id == reservation.user_id)
                       .values(reserved=User.reserved - reservation.amount))
    if reservation.api_key_id is not None:
        db.session.execute(sa.update(ApiKey).where(ApiKey.id == reservation.api_key_id)
                           .values(reserved_quota=ApiKey.reserved_quota - reservation.amount))
