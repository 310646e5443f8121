"""POST /api/v1/chat[?batch=1] — seed 003's flat-priced chat, with its own response and error shapes."""

from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from blueprints.api import assign_request_id, read_json_body, with_retry_after
from blueprints.api.auth import authenticate
from blueprints.api.chat import route_chat
from blueprints.api.records import Turn
from gateway import pricing, validation
from gateway.errors import GatewayError, ModelNotFound
from gateway.shapes import completion_out

bp = Blueprint("credit_chat", __name__, url_prefix="/api/v1")
DEFAULT_MAX_TOKENS = 150


bp.before_request(assign_request_id)


@bp.errorhandler(GatewayError)
def gateway_error(exc):
    body = {"error": exc.message}
    if exc.status == 401:
        body = {"error": "Invalid API key"}
    elif isinstance(exc, ModelNotFound):
        body = {"error": f"Model '{g.get('requested_model', '')}' not found"}
    elif exc.status == 402:
        required, available = _plain(exc.extra["credits_required"]), _plain(exc.extra["credits_available"])
        body = {"error": f"Insufficient credits. Required: {required}, Available: {available}",
                "credits_required": required, "credits_available": available, "limit_source": exc.extra["limit_source"]}
    response = jsonify(body)
    response.status_code = exc.status
    return with_retry_after(response, exc)


@bp.errorhandler(HTTPException)
def http_error(exc):
    return jsonify({"error": exc.description}), exc.code


@bp.post("/chat")
def chat():
    caller = authenticate()
    body = read_json_body()
    if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list) \
            or not body["messages"]:
        raise GatewayError(400, "Missing required fields: model and messages array")
    g.requested_model = body["model"]
    body = {"model": body["model"], "messages": body["messages"], "max_tokens": body.get("max_tokens", DEFAULT_MAX_TOKENS)}
    validation.chat_request(body)
    batch = request.args.get("batch") == "1"
    price = current_app.config["CREDITS_PER_BATCH_REQUEST" if batch else "CREDITS_PER_REQUEST"]
    turn = Turn(caller, "credit_chat", body["model"], fixed_cost=round(price * pricing.MICRO_PER_USD))
    result = route_chat(caller, body, turn, stream=False)
    turn.served(result.model, result.attempts, result.usage)
    answer = completion_out(result.body, g.request_id, result.model.id)
    answer.update(credits_charged=pricing.to_credits(turn.charged),
                  credits_remaining=pricing.to_credits(turn.available or 0), batch_request=batch)
    response = jsonify(answer)
    response.headers.update(turn.headers(result.model, result.attempts))
    return response


def _plain(credits):
    """Whole credits as integers, as seed 003 writes them (`Required: 1`, not `1.0`)."""
    return int(credits) if float(credits).is_integer() else credits
