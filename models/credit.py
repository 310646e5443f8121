"""The credit ledger: integer micro-USD, one row per balance change, guarded conditional updates.

Balance and reservations live on the user row; every change of `balance` writes exactly one
ledger row with `balance_after`, in the same transaction, so the balance always equals the sum
of the ledger. Reservations only move `reserved`, never `balance`. Every update is a single
conditional UPDATE (`WHERE balance - reserved >= :amount`), never read-then-write, so N
concurrent requests in any number of workers can never spend more than the balance.

A request's writes (`hold`, then `settle` or `give_back`) are steps of a job that the worker's
group commit (models.group_commit) commits together with its other requests' writes.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app

from extensions import begin_write, db
from models import group_commit
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
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)    # or last renewed (`renew`)


@dataclass
class InsufficientCredit(group_commit.Refusal):
    """402: which limit refused the reservation, and the numbers (micro-USD)."""
    limit_source: str          # user_balance | key_quota
    needed: int
    available: int


def reserve(request_id, user_id, key_id, amount, key_limited=True, app=None):
    """Hold `amount` (`hold`), committed with the worker's other writes; None when nothing needed holding.

    :raise InsufficientCredit: naming the limit that refused (nothing is held then).
    """
    if amount <= 0:
        return None
    return group_commit.run(app or current_app, lambda batch: hold(batch, request_id, user_id, key_id, amount,
                                                                     key_limited))


def hold(batch, request_id, user_id, key_id, amount, key_limited=True):
    """Hold `amount` against the user's balance and, for a limited key, its quota, and record the hold.

    Returns what the user has available after the hold.

    :raise InsufficientCredit: naming the limit that refused, with its own writes undone.
    """
    held = batch.execute(_HOLD_BALANCE, {"uid": user_id, "amount": amount}).first()
    if held is None:
        raise InsufficientCredit("user_balance", amount, _available(batch, user_id))
    held_key = key_id if key_limited and key_id is not None else None
    if held_key is not None and batch.execute(_HOLD_QUOTA, {"kid": key_id, "amount": amount}).rowcount != 1:
        batch.execute(_UNHOLD_BALANCE, {"uid": user_id, "held": amount})
        key = batch.execute(_KEY_QUOTA, {"kid": key_id}).one()
        raise InsufficientCredit("key_quota", amount, max(0, key.remain_quota - key.reserved_quota))
    batch.insert(_RESERVATIONS, {"request_id": request_id, "user_id": user_id, "api_key_id": held_key,
                                 "amount": amount, "status": HELD, "created_at": utcnow()})
    return held.balance - held.reserved


def settle(batch, request_id, user_id, key_id, cost, description):
    """Charge the real cost once, never more than was held, and free the hold.

    Returns (micro-USD charged, micro-USD available after), or (0, None) when nothing was held. The
    hold is the request's upper bound, so the charge always fits the balance and the key's quota:
    a cost above it is an upstream's overrun, which the caller records.
    """
    held = _close_reservation(batch, request_id, SETTLED)
    if held is None:
        return 0, None
    charge = max(0, min(cost, held.amount))
    row = batch.execute(_CHARGE, {"uid": user_id, "held": held.amount, "charge": charge}).first()
    if charge:
        batch.insert(_LEDGER, {"user_id": user_id, "amount": -charge, "balance_after": row.balance,
                               "kind": "charge", "request_id": request_id,
                               "description": description[:300], "created_at": utcnow()})
    if key_id is not None:
        batch.execute(_SPEND_QUOTA, {"kid": key_id, "held": held.amount if held.api_key_id else 0, "charge": charge})
    return charge, max(0, row.balance - row.reserved)


def give_back(batch, request_id):
    """Free a failed request's hold: nothing is charged, no ledger row is written."""
    held = _close_reservation(batch, request_id, RELEASED)
    if held is not None:
        batch.execute(_UNHOLD_BALANCE, {"uid": held.user_id, "held": held.amount})
        if held.api_key_id is not None:
            batch.execute(_UNHOLD_QUOTA, {"kid": held.api_key_id, "held": held.amount})


def release(request_id, app=None):
    """`give_back`, committed with the worker's other writes."""
    group_commit.run(app or current_app, lambda batch: give_back(batch, request_id))


def renew(request_id, app=None):
    """A live request (a long stream) still needs its hold: restart the hold's sweep clock."""
    group_commit.run(app or current_app, lambda batch: batch.execute(_RENEW, {"rid": request_id, "now": utcnow()}))


def sweep(older_than_s):
    """Release reservations left behind by a killed worker; returns how many were released."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    stale = db.session.scalars(sa.select(Reservation.request_id)
                               .where(Reservation.status == HELD, Reservation.created_at < cutoff)).all()
    db.session.rollback()       # no snapshot is kept open while the releases write
    for request_id in stale:
        release(request_id)
    return len(stale)


def grant(user_id, amount, kind="grant", description=""):
    """Add credit (or take it back with a negative amount, never below what is available); one ledger row.

    :raise InsufficientCredit: a negative amount larger than the available balance.
    """
    begin_write()
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
    return _available(db.session, user_id)


def _available(executor, user_id):
    """What the user may still spend, read through `executor` (the session, or a group-commit batch)."""
    row = executor.execute(_BALANCE, {"uid": user_id}).one()
    return max(0, row.balance - row.reserved)


def _close_reservation(batch, request_id, status):
    """Flip held → status exactly once; returns the held row (amount, user, key), or None."""
    return batch.execute(_CLOSE, {"rid": request_id, "new_status": status}).first()


# The hot path's statements, built once: every request runs several, so their construction
# cost matters (the ORM's per-statement bookkeeping is avoided on purpose: these are plain rows).
_USERS, _KEYS = User.__table__, ApiKey.__table__
_RESERVATIONS, _LEDGER = Reservation.__table__, CreditTransaction.__table__
_amount, _held, _charge = sa.bindparam("amount"), sa.bindparam("held"), sa.bindparam("charge")
_HOLD_BALANCE = (sa.update(_USERS).where(_USERS.c.id == sa.bindparam("uid"),
                                         _USERS.c.balance - _USERS.c.reserved >= _amount)
                 .values(reserved=_USERS.c.reserved + _amount).returning(_USERS.c.balance, _USERS.c.reserved))
_HOLD_QUOTA = (sa.update(_KEYS).where(_KEYS.c.id == sa.bindparam("kid"),
                                      sa.or_(_KEYS.c.unlimited_quota.is_(True),
                                             _KEYS.c.remain_quota - _KEYS.c.reserved_quota >= _amount))
               .values(reserved_quota=_KEYS.c.reserved_quota + _amount))
_CLOSE = (sa.update(_RESERVATIONS).where(_RESERVATIONS.c.request_id == sa.bindparam("rid"),
                                         _RESERVATIONS.c.status == HELD)
          .values(status=sa.bindparam("new_status"))
          .returning(_RESERVATIONS.c.amount, _RESERVATIONS.c.user_id, _RESERVATIONS.c.api_key_id))
_CHARGE = (sa.update(_USERS).where(_USERS.c.id == sa.bindparam("uid"))
           .values(balance=_USERS.c.balance - _charge, reserved=_USERS.c.reserved - _held)
           .returning(_USERS.c.balance, _USERS.c.reserved))
_BALANCE = sa.select(_USERS.c.balance, _USERS.c.reserved).where(_USERS.c.id == sa.bindparam("uid"))
_KEY_QUOTA = sa.select(_KEYS.c.remain_quota, _KEYS.c.reserved_quota).where(_KEYS.c.id == sa.bindparam("kid"))
_RENEW = (sa.update(_RESERVATIONS).where(_RESERVATIONS.c.request_id == sa.bindparam("rid"),
                                         _RESERVATIONS.c.status == HELD)
          .values(created_at=sa.bindparam("now")))
_UNHOLD_BALANCE = (sa.update(_USERS).where(_USERS.c.id == sa.bindparam("uid"))
                   .values(reserved=_USERS.c.reserved - _held))
_UNHOLD_QUOTA = (sa.update(_KEYS).where(_KEYS.c.id == sa.bindparam("kid"))
                 .values(reserved_quota=_KEYS.c.reserved_quota - _held))
_SPEND_QUOTA = (sa.update(_KEYS).where(_KEYS.c.id == sa.bindparam("kid"))
                .values(reserved_quota=_KEYS.c.reserved_quota - _held, used_quota=_KEYS.c.used_quota + _charge,
                        remain_quota=sa.case((_KEYS.c.unlimited_quota.is_(True), _KEYS.c.remain_quota),
                                             else_=_KEYS.c.remain_quota - _charge)))
