"""Reading the money back out of the database, for assertions."""
import sqlalchemy as sa

from extensions import db
from models import ApiKey, CreditTransaction, Reservation, User

PRICED = {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}     # micro-USD per token: 1000 in, 2000 out
MICRO = 1_000_000


def price_of(usage, prices=PRICED, ratio=1.0):
    prompt, completion = usage
    return round((prompt * prices["input_per_mtok"] + completion * prices["output_per_mtok"]) * ratio)


def money(app, user_id):
    """(balance, reserved, ledger sum, ledger rows) of a user."""
    with app.app_context():
        user = db.session.get(User, user_id)
        rows = db.session.scalars(sa.select(CreditTransaction).where(CreditTransaction.user_id == user_id)
                                  .order_by(CreditTransaction.id)).all()
        return user.balance, user.reserved, sum(r.amount for r in rows), [(r.kind, r.amount) for r in rows]


def charges(app, user_id):
    return [amount for kind, amount in money(app, user_id)[3] if kind == "charge"]


def held_reservations(app):
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).where(Reservation.status == "held"))


def key_quota(app, raw_key_prefix_id):
    with app.app_context():
        key = db.session.get(ApiKey, raw_key_prefix_id)
        return key.remain_quota, key.reserved_quota, key.used_quota
