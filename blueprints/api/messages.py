"""POST /v1/messages: Anthropic Messages in and out, routed to any provider like chat."""
import uuid

from flask import Blueprint, Response, g, jsonify
from werkzeug.exceptions import HTTPException

from blueprints.api import read_json_body, with_retry_after
from blueprints.api.auth import authenticate
from blueprints.api.chat import SSE_HEADERS, route_chat
from blueprints.api.records import Turn, settled
from gateway import anthropic_api
from gateway.errors import GatewayError

bp = Blueprint("anthropic", __name__, url_prefix="/v1")


@bp.before_request
def assign_request_id():
    g.request_id = uuid.uuid4().hex


@bp.errorhandler(GatewayError)
def gateway_error(exc):
    return with_retry_after(anthropic_error(exc.status, exc.message), exc)


@bp.errorhandler(HTTPException)
def http_error(exc):
    return anthropic_error(exc.code, exc.description)


def anthropic_error(status, message):
    response = jsonify(anthropic_api.error_body(status, message))
    response.status_code = status
    response.headers["X-Request-ID"] = g.get("request_id", "")
    return response


@bp.post("/messages")
def create_message():
    caller = authenticate()
    body = anthropic_api.request_from_anthropic(read_json_body())
    stream = body.get("stream") is True
    turn = Turn(caller, "messages", body["model"], stream)
    outcome = route_chat(caller, body, turn, stream, include_usage=True)
    headers = {**turn.headers(outcome.model, outcome.attempts), "X-Request-ID": g.request_id}
    if stream:
        return Response(_relay(outcome, turn, f"msg_{g.request_id}"), mimetype="text/event-stream",
                        headers={**SSE_HEADERS, **headers})
    turn.served(outcome.model, outcome.attempts, outcome.usage)
    response = jsonify(anthropic_api.message_from_completion(outcome.body, outcome.model.id, f"msg_{g.request_id}"))
    response.headers.update(turn.headers(outcome.model, outcome.attempts))
    return response


def _relay(session, turn, message_id):
    """Translate the committed OpenAI chunk stream into Anthropic events; settle and log when it ends."""
    with settled(session, turn) as end:
        yield from anthropic_api.stream_from_chunks(iter(session), session.model.id, message_id)
        if session.interrupted:
            end.update(status=502, error=session.interrupted)
