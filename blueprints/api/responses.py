"""POST /v1/responses (OpenAI's Responses API, routed, billed and logged like chat, to any provider)
and the caller's stored responses: GET and DELETE /v1/responses/{id}, GET …/{id}/input_items."""
from contextlib import nullcontext

from flask import Response, current_app, g, has_app_context, jsonify, request

from blueprints.api import bp, read_json_body
from blueprints.api.auth import authenticate
from blueprints.api.chat import SSE_HEADERS, route_chat
from blueprints.api.records import Turn, current_gateway, settled
from gateway import responses_api
from gateway.affinity import conversation_key
from gateway.errors import BadRequest, GatewayError, StreamInterrupted
from models import stored_response


@bp.post("/responses")
def create_response():
    caller = authenticate()
    body = read_json_body()
    items = responses_api.input_items(body)
    first_id, history = _history(caller.user_id, body.get("previous_response_id"))
    chat = responses_api.chat_request(body, history, items, native=_native_candidate(body))
    stream = chat.get("stream") is True
    turn = Turn(caller, "responses", chat["model"], stream)
    response_id = f"resp_{g.request_id}"
    if first_id is None and body.get("store", True):      # this response may start a chain
        first_id = response_id
    outcome = route_chat(caller, chat, turn, stream, include_usage=True,
                         affinity=lambda: conversation_key(request.headers, chat, first_id,
                                                                  body.get("prompt_cache_key")))
    draft = responses_api.draft(body, response_id, outcome.model.id)
    keep = _keeper(caller.user_id, items) if body.get("store", True) else None
    if stream:
        events = responses_api.NativeResponseStream if _native(outcome.model) else responses_api.ResponseStream
        headers = {**SSE_HEADERS, **turn.headers(outcome.model, outcome.attempts), "X-Request-ID": g.request_id}
        return Response(_relay(outcome, turn, events(draft), keep), mimetype="text/event-stream", headers=headers)
    turn.served(outcome.model, outcome.attempts, outcome.usage)
    answer = responses_api.response_from_completion(outcome.body, draft)
    if keep:
        keep(answer)
    response = jsonify(answer)
    response.headers.update(turn.headers(outcome.model, outcome.attempts))
    return response


@bp.get("/responses/<response_id>")
def get_response(response_id):
    return jsonify(_owned(authenticate().user_id, response_id).response)


@bp.delete("/responses/<response_id>")
def delete_response(response_id):
    if not stored_response.delete(authenticate().user_id, response_id):
        raise _not_found(response_id)
    return jsonify({"id": response_id, "object": "response", "deleted": True})


@bp.get("/responses/<response_id>/input_items")
def list_input_items(response_id):
    row = _owned(authenticate().user_id, response_id)
    limit, order = request.args.get("limit", "20"), request.args.get("order", "desc")
    if not (limit.isdigit() and 1 <= int(limit) <= 100):
        raise BadRequest("'limit' must be between 1 and 100.", "limit")
    if order not in ("asc", "desc"):
        raise BadRequest("'order' must be asc or desc.", "order")
    return jsonify(responses_api.item_list(row.input_items, int(limit), order, request.args.get("after")))


def _relay(session, turn, events, keep):
    """Relay a committed chat stream as Responses events, with the usage that is billed; store the outcome
    before the last event (a client may continue from it at once); a broken stream ends with
    `response.failed`, stored as failed."""
    with settled(session, turn) as end:
        yield from events.opening()
        try:
            for chunk in session:
                yield from events.feed(chunk)
            yield from events.finish(session.produced_usage())
        except StreamInterrupted as exc:
            end.update(status=502, error=exc.message)
            yield from events.fail(exc.message, session.produced_usage())
        if keep:
            keep(events.response)
        yield events.closing()


def _native_candidate(body):
    """Whether a candidate for the request serves /responses itself (then what only it runs is accepted
    here, and refused by the candidates that translate). A bad or unknown model is answered later."""
    model, explicit = body.get("model"), body.get("models")
    if not isinstance(model, str) or not (explicit is None or isinstance(explicit, list)
                                          and all(isinstance(m, str) for m in explicit)):
        return False
    try:
        candidates = current_gateway().catalog.candidates(model, "chat", explicit)
    except GatewayError:
        return False
    return any(_native(candidate) for candidate in candidates)


def _native(model):
    return current_gateway().settings.providers[model.provider].responses == "native"


def _keeper(user_id, items):
    """Stores a finished response for `user_id`, also from a streamed body (which runs after the request)."""
    app = current_app._get_current_object()

    def keep(response):
        with nullcontext() if has_app_context() else app.app_context():
            stored_response.save(user_id, response, items)
    return keep


def _history(user_id, previous_id):
    """The conversation that `previous_response_id` continues: its first response's id and its stored
    items ((None, []) for a new one).

    :raise GatewayError: 404 when it is not one of the caller's stored responses.
    """
    if previous_id is None:
        return None, []
    chain = stored_response.conversation(user_id, previous_id)
    if chain is None:
        raise _not_found(previous_id, "previous_response_id")
    return chain


def _owned(user_id, response_id):
    row = stored_response.owned(user_id, response_id)
    if row is None:
        raise _not_found(response_id)
    return row


def _not_found(response_id, param=None):
    return GatewayError(404, f"Response with id '{response_id}' not found.", "invalid_request_error", "not_found",
                        param)
