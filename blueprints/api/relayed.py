"""The one flow of the endpoints relayed unchanged (gateway.passthrough): routed, held and billed like embeddings."""
from flask import Response, jsonify

from blueprints.api import own_keys
from blueprints.api.records import Turn, current_gateway, routable
from gateway import passthrough
from gateway.errors import GatewayError
from gateway.shapes import relayed_out


def relay(caller, endpoint, body):
    """Route a checked `body` to the first candidate serving `endpoint`; its answer, with the gateway's headers."""
    held = passthrough.bound(endpoint, body)
    turn = Turn(caller, endpoint, body["model"], bound=held)
    try:
        candidates = routable(caller, body["model"], passthrough.KINDS[endpoint])
        turn.reserve(candidates, body)
        result = current_gateway().router.relay(endpoint, candidates, body, own_keys.request_keys(caller, candidates),
                                                tenant=caller.user_id)
    except GatewayError as exc:
        turn.failed(exc)
        raise
    answer = result.body
    turn.served(result.model, result.attempts, passthrough.usage(answer, held))
    if answer.payload is not None:
        response = jsonify(relayed_out(answer.payload, result.model.id))
    else:
        response = Response(answer.content, content_type=answer.content_type)
    response.headers.update(turn.headers(result.model, result.attempts))
    return response
