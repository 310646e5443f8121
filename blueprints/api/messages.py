"""POST /v1/messages and /v1/messages/count_tokens: Anthropic Messages in and out, routed to any
provider like chat."""

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from blueprints.api import assign_request_id, own_keys, read_json_body, with_retry_after
from blueprints.api.auth import authenticate
from blueprints.api.chat import SSE_HEADERS, route_chat
from blueprints.api.records import Turn, current_gateway, routable, settled
from gateway import anthropic_api, pricing
from gateway.affinity import conversation_key
from gateway.errors import GatewayError

bp = Blueprint("anthropic", __name__, url_prefix="/v1")


bp.before_request(assign_request_id)


@bp.after_request
def add_request_id(response):
    """Anthropic's SDKs read `request-id` (and show it in their errors); ours say X-Request-ID."""
    response.headers["X-Request-ID"] = response.headers["request-id"] = g.get("request_id", "")
    return response


@bp.errorhandler(GatewayError)
def gateway_error(exc):
    return with_retry_after(anthropic_error(exc.status, exc.message), exc)


@bp.errorhandler(HTTPException)
def http_error(exc):
    return anthropic_error(exc.code, exc.description)


def anthropic_error(status, message):
    response = jsonify(anthropic_api.error_body(status, message))
    response.status_code = status
    return response


def forwarded_headers():
    return {name: request.headers[name] for name in anthropic_api.FORWARDED_HEADERS if name in request.headers}


@bp.post("/messages")
def create_message():
    caller = authenticate()
    body = anthropic_api.request_from_anthropic(read_json_body(), forwarded_headers())
    stream = body.get("stream") is True
    turn = Turn(caller, "messages", body["model"], stream)
    outcome = route_chat(caller, body, turn, stream, include_usage=True,
                         affinity=lambda: conversation_key(request.headers, body))
    message_id = f"msg_{g.request_id}"
    if stream:
        return Response(_relay(outcome, turn, message_id), mimetype="text/event-stream",
                        headers={**SSE_HEADERS, **turn.headers(outcome.model, outcome.attempts)})
    charged = turn.served(outcome.model, outcome.attempts, outcome.usage)
    response = jsonify(anthropic_api.message_from_completion(outcome.body, outcome.model.id, message_id,
                                                             pricing.to_credits(charged)))
    response.headers.update(turn.headers(outcome.model, outcome.attempts))
    return response


@bp.post("/messages/count_tokens")
def count_tokens():
    """Anthropic's {"input_tokens": N}: the Anthropic upstream's own count, else the gateway's estimate (free)."""
    caller = authenticate()
    body = anthropic_api.count_request(read_json_body(), forwarded_headers())
    turn = Turn(caller, "count_tokens", body["model"], fixed_cost=0)
    try:
        candidates = routable(caller, body["model"], "chat")
        result = current_gateway().router.count_tokens(candidates, body, own_keys.request_keys(caller, candidates),
                                                       tenant=caller.user_id)
    except GatewayError as exc:
        turn.failed(exc)
        raise
    turn.served(result.model, result.attempts, result.usage)
    response = jsonify(result.body)
    response.headers.update(turn.headers(result.model, result.attempts))
    return response


def _relay(session, turn, message_id):
    """Translate the committed OpenAI chunk stream into Anthropic events; settle and log when it ends."""
    with settled(session, turn) as end:
        yield from anthropic_api.stream_from_chunks(iter(session), session.model.id, message_id,
                                                    lambda usage: turn.quote(session.model, usage))
        if session.interrupted:
            end.update(status=502, error=session.interrupted)
