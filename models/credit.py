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

from extensions import begin_write, db, execute_core
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
class InsufficientCredit(Exception):
    """402: which limit refused the reservation, and the numbers (micro-USD)."""
    limit_source: str          # user_balance | key_quota
    needed: int
    available: int


def reserve(request_id, user_id, key_id, amount, key_limited=True):
    """Hold `amount` against the user's balance and, for a limited key, its quota; commits.

    Returns what the user has available after the hold (None when nothing needed holding).

    :raise InsufficientCredit: naming the limit that refused (nothing is held then).
    """
    if amount <= 0:
        return None
    begin_write()
    held = execute_core(_HOLD_BALANCE, {"uid": user_id, "amount": amount}).first()
    if held is None:
        db.session.rollback()
        raise InsufficientCredit("user_balance", amount, available_balance(user_id))
    held_key = key_id if key_limited and key_id is not None else None
    if held_key is not None and execute_core(_HOLD_QUOTA, {"kid": key_id, "amount": amount}).rowcount != 1:
        db.session.rollback()
        key = db.session.get(ApiKey, key_id)
        raise InsufficientCredit("key_quota", amount, max(0, key.remain_quota - key.reserved_quota))
    execute_core(_RESERVATIONS.insert(), {"request_id": request_id, "user_id": user_id, "api_key_id": held_key,
                                          "amount": amount, "status": HELD, "created_at": utcnow()})
    db.session.commit()
    return held.balance - held.reserved


def settle(request_id, user_id, key_id, cost, description):
    """Charge the real cost once, never more than was held, and free the hold, in the caller's transaction.

    Returns (micro-USD charged, micro-USD available after), or (0, None) when nothing was held. The
    hold is the request's upper bound, so the charge always fits the balance and the key's quota:
    a cost above it is an upstream's overrun, which the caller records. The caller commits.
    """
    begin_write()
    held = _close_reservation(request_id, SETTLED)
    if held is None:
        return 0, None
    charge = max(0, min(cost, held.amount))
    row = execute_core(_CHARGE, {"uid": user_id, "held": held.amount, "charge": charge}).first()
    if charge:
        execute_core(_LEDGER.insert(), {"user_id": user_id, "amount": -charge, "balance_after": row.balance,
                                        "kind": "charge", "request_id": request_id,
                                        "description": description[:300], "created_at": utcnow()})
    if key_id is not None:
        execute_core(_SPEND_QUOTA, {"kid": key_id, "held": held.amount if held.api_key_id else 0, "charge": charge})
    return charge, max(0, row.balance - row.reserved)


def release(request_id):
    """Give a failed request's reservation back; nothing is charged, no ledger row is written."""
    begin_write()
    held = _close_reservation(request_id, RELEASED)
    if held is None:
        db.session.rollback()
        return
    _unhold(held)
    db.session.commit()


def renew(request_id):
    """A live request (a long stream) still needs its hold: restart the hold's sweep clock."""
    begin_write()
    db.session.execute(sa.update(Reservation).where(Reservation.request_id == request_id, Reservation.status == HELD)
                       .values(created_at=utcnow()))
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
    row = db.session.execute(sa.select(User.balance, User.reserved).where(User.id == user_id)).one()
    return max(0, row.balance - row.reserved)


def _close_reservation(request_id, status):
    """Flip held → status exactly once; returns the held row (amount, user, key), or None."""
    return execute_core(_CLOSE, {"rid": request_id, "new_status": status}).first()


def _unhold(held):
    execute_core(_UNHOLD_BALANCE, {"uid": held.user_id, "held": held.amount})
    if held.api_key_id is not None:
        execute_core(_UNHOLD_QUOTA, {"kid": held.api_key_id, "held": held.amount})


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
_UNHOLD_BALANCE = (sa.update(_USERS).where(_USERS.c.id == sa.bindparam("uid"))
                   .values(reserved=_USERS.c.reserved - _held))
_UNHOLD_QUOTA = (sa.update(_KEYS).where(_KEYS.c.id == sa.bindparam("kid"))
                 .values(reserved_quota=_KEYS.c.reserved_quota - _held))
_SPEND_QUOTA = (sa.update(_KEYS).where(_KEYS.c.id == sa.bindparam("kid"))
                .values(reserved_quota=_KEYS.c.reserved_quota - _held, used_quota=_KEYS.c.used_quota + _charge,
                        remain_quota=sa.case((_KEYS.c.unlimited_quota.is_(True), _KEYS.c.remain_quota),
                                             else_=_KEYS.c.remain_quota - _charge)))
