"""GET /metrics: the Prometheus text of gateway/metrics.py, for an admin's key or the operator's
METRICS_TOKEN bearer (Prometheus' `authorization` setting), errors in the `{"detail"}` shape."""
import time

import sqlalchemy as sa
from flask import Blueprint, Response, g

from blueprints.api.auth import require_operator
from blueprints.api.detail import detail_api
from extensions import execute_core
from gateway import metrics, pricing
from models import User

bp = Blueprint("metrics", __name__)
detail_api(bp, public=("scrape",))          # `require_operator` authenticates: it takes the token as well


@bp.before_app_request
def start_clock():
    """When each request began: a routed request's duration (blueprints/api/records.py) then counts
    its authentication and parsing as the gateway's own time too."""
    g.request_started = time.monotonic()


@bp.get("/metrics")
def scrape():
    require_operator()
    return Response(metrics.exposition(metrics.UserBalances(_balances)), content_type=metrics.CONTENT_TYPE)


def _balances():
    return ((user_id, pricing.to_credits(balance)) for user_id, balance in execute_core(_BALANCES, {}))


_BALANCES = sa.select(User.id, User.balance)
