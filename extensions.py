"""Extension objects, created unbound and bound in create_app (avoids circular imports)."""
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from htmx_flask import Htmx
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
login_manager = LoginManager()
htmx = Htmx()


def execute_core(statement, params):
    """Run a prebuilt Core statement in the session's transaction, on its connection directly.

    The ORM's per-statement work (execution options, ORM compile state, events) buys nothing for
    plain Core statements, and the request hot path runs several of them per request.
    """
    return db.session.connection().execute(statement, params)
