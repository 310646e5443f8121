"""Stored Responses-API responses (`store: true`, the default): what `previous_response_id`,
GET /v1/responses/{id} and its `input_items` need, scoped to the user who created them.

A response keeps only its own input items and its output; a conversation is the chain of
`previous_response_id` links, walked back when it is continued, so each turn is stored once.
"""
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from extensions import begin_write, db
from models.user import utcnow

MAX_CHAIN = 1000     # turns walked back through previous_response_id (a guard against a runaway walk)


class StoredResponse(db.Model):
    __tablename__ = "stored_responses"
    __table_args__ = (sa.Index("ix_stored_responses_user_created", "user_id", "created_at"),)

    id: so.Mapped[str] = so.mapped_column(sa.String(64), primary_key=True)           # resp_…
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    previous_response_id: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    model: so.Mapped[str] = so.mapped_column(sa.String(200))                          # the model that answered
    status: so.Mapped[str] = so.mapped_column(sa.String(16))                         # completed|incomplete|failed
    input_items: so.Mapped[list] = so.mapped_column(sa.JSON, default=list)
    response: so.Mapped[dict] = so.mapped_column(sa.JSON)      # the object as answered, its output included
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


def owned(user_id, response_id):
    """The user's stored response with this id, or None (another user's id is not found either)."""
    if not isinstance(response_id, str):
        return None
    return db.session.scalar(sa.select(StoredResponse).where(StoredResponse.id == response_id,
                                                             StoredResponse.user_id == user_id))


def conversation(user_id, response_id):
    """The chain that ends at `response_id`: the id of its first response, and its items oldest first
    (each turn's input, then its output).

    One recursive query walks the `previous_response_id` links, each step scoped to the user.

    :return: (first id, items), or None when a response of the chain is not the user's (or is gone).
    """
    rows = db.session.execute(_chain_statement(user_id, response_id)).all()
    if not rows or rows[0].previous_response_id is not None:      # the oldest turn must start the chain
        return None
    return rows[0].id, [item for row in rows for item in row.input_items + row.response["output"]]


def _chain_statement(user_id, response_id):
    chain = (sa.select(StoredResponse.id, StoredResponse.previous_response_id, sa.literal(0).label("depth"))
             .where(StoredResponse.id == response_id, StoredResponse.user_id == user_id)
             .cte("chain", recursive=True))
    earlier = so.aliased(StoredResponse)
    chain = chain.union_all(sa.select(earlier.id, earlier.previous_response_id, chain.c.depth + 1)
                            .where(earlier.id == chain.c.previous_response_id, earlier.user_id == user_id,
                                   chain.c.depth < MAX_CHAIN))
    return (sa.select(StoredResponse.id, StoredResponse.input_items, StoredResponse.response,
                      StoredResponse.previous_response_id)
            .join(chain, StoredResponse.id == chain.c.id).order_by(chain.c.depth.desc()))


def save(user_id, response, input_items):
    """Store an answered response (its `output` and status come from `response`) in one commit."""
    begin_write()
    db.session.add(StoredResponse(id=response["id"], user_id=user_id, model=response["model"],
                                  previous_response_id=response.get("previous_response_id"),
                                  status=response["status"], input_items=input_items, response=response))
    db.session.commit()


def delete(user_id, response_id):
    """Delete the user's stored response; False when there is none of that id."""
    begin_write()
    deleted = db.session.execute(sa.delete(StoredResponse).where(StoredResponse.id == response_id,
                                                                 StoredResponse.user_id == user_id)).rowcount
    db.session.commit()
    return bool(deleted)
