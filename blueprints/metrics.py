"""GET /metrics: the Prometheus text of gateway/metrics.py, for an admin's key or the operator's
METRICS_TOKEN bearer (Prometheus' `authorization` setting), errors in the `{"detail"}` shape."""
import hmac
import time

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, g

from blueprints.api.auth import authenticate, presented_key
from blueprints.api.detail import detail_api
from extensions import execute_core
from gateway import metrics, pricing
from gateway.errors import GatewayError
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


def require_operator():
    """Let the operator's METRICS_TOKEN or an admin's API key through.

    :raise GatewayError: 401 without a valid token or key (as `authenticate`), 403 for a key of a non-admin.
    """
    token = current_app.config["METRICS_TOKEN"]
    if token and hmac.compare_digest(presented_key().encode(), token.encode()):
        return
    caller = authenticate()
    if execute_core(_ROLE, {"id": caller.user_id}).scalar() != "admin":
        raise GatewayError(403, "Only an administrator's API key or the METRICS_TOKEN may read the metrics.",
                           "permission_error", "admin_required")


def _balances():
    return ((user_id, pricing.to_credits(balance)) for user_id, balance in execute_core(_BALANCES, {}))


_ROLE = sa.select(User.role).where(User.id == sa.bindparam("id"))
_BALANCES = sa.select(User.id, User.balance)
