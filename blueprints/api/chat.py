"""POST /v1/chat/completions (stream and not) and /v1/chat/completions/stream."""
import time

from flask import Response, g, jsonify, request

from blueprints.api import bp, own_keys, read_json_body
from blueprints.api.auth import authenticate
from blueprints.api.records import Turn, current_gateway, routable, settled
from gateway import pricing, validation
from gateway.affinity import conversation_key
from gateway.errors import GatewayError, StreamInterrupted
from gateway.shapes import chunk_out, completion_out, error_body
from gateway.sse import DONE, encode_data

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@bp.post("/chat/completions")
def chat_completions():
    return _chat(always_stream=False)


@bp.post("/chat/completions/stream")
def chat_completions_stream():
    """Seed 004's route: the same body, always streamed."""
    return _chat(always_stream=True)


def route_chat(caller, body, turn, stream, include_usage=False, affinity=None):
    """Reserve credit, then route: a StreamSession when streaming, else a RouteResult.

    The request's own provider keys (header, the user's) go first; what failover learnt about
    the user's keys is saved and logged as soon as routing is decided. `affinity` (a function) names the
    request's conversation (gateway.affinity); only a provider that orders its keys by conversation asks
    it, so that the request reaches the key whose upstream cache holds it.

    :raise GatewayError: refusals and failures, after releasing the reservation and logging.
    """
    router = current_gateway().router
    body = pricing.with_completion_limit(body)
    try:
        candidates = routable(caller, body["model"], "chat", body.get("models"))
        keys = own_keys.request_keys(caller, candidates)
        turn.reserve(candidates, body)
        if stream:
            outcome = router.stream(candidates, body, keys, include_usage=include_usage, tenant=caller.user_id,
                                    affinity=affinity)
            turn.hold_while_streaming(outcome)
        else:
            outcome = router.complete(candidates, body, keys, tenant=caller.user_id, affinity=affinity)
    except GatewayError as exc:
        own_keys.apply_failover(caller.user_id, exc.attempts)
        turn.failed(exc)
        raise
    except Exception:
        turn.failed(GatewayError(500, "internal error while routing", "server_error"))
        raise
    own_keys.apply_failover(caller.user_id, outcome.attempts)
    turn.dropped = outcome.dropped
    return outcome


def _chat(always_stream):
    caller = authenticate()
    body = validation.chat_request(read_json_body())
    stream = always_stream or body.get("stream") is True
    turn = Turn(caller, "chat", body["model"], stream)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    outcome = route_chat(caller, body, turn, stream, include_usage, lambda: conversation_key(request.headers, body))
    if stream:
        headers = {**SSE_HEADERS, **turn.headers(outcome.model, outcome.attempts), "X-Request-ID": g.request_id}
        return Response(relay_sse(outcome, g.request_id, turn), mimetype="text/event-stream", headers=headers)
    turn.served(outcome.model, outcome.attempts, outcome.usage)
    response = jsonify(completion_out(outcome.body, g.request_id, outcome.model.id, pricing.to_credits(turn.charged)))
    response.headers.update(turn.headers(outcome.model, outcome.attempts))
    return response


def relay_sse(session, request_id, turn, shape=chunk_out):
    """Relay a committed stream, each chunk as `shape` makes it (a chat chunk unless the endpoint has its own);
    a later upstream failure ends it with an error event and no [DONE]."""
    created, model_id = int(time.time()), session.model.id
    with settled(session, turn) as end:
        try:
            for chunk in session:
                if chunk.get("usage"):
                    chunk["usage"]["cost"] = turn.quote(session.model, chunk["usage"])
                yield encode_data(shape(chunk, request_id, model_id, created))
            yield DONE
        except StreamInterrupted as exc:
            end.update(status=502, error=exc.message)
            yield encode_data(error_body(exc.message, "server_error", "stream_interrupted"))
