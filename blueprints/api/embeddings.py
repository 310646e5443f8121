"""POST /v1/embeddings, routed like chat (OpenAI-compatible, Gemini and demo upstreams)."""
from flask import jsonify

from blueprints.api import bp, own_keys, read_json_body
from blueprints.api.auth import authenticate
from blueprints.api.records import Turn, current_gateway, routable
from gateway import validation
from gateway.errors import GatewayError
from gateway.shapes import embeddings_out


@bp.post("/embeddings")
def create_embeddings():
    caller = authenticate()
    body = validation.embeddings_request(read_json_body())
    turn = Turn(caller, "embeddings", body["model"])
    try:
        candidates = routable(caller, body["model"], "embedding")
        turn.reserve(candidates, body)
        result = current_gateway().router.embed(candidates, body, own_keys.request_keys(caller, candidates),
                                               tenant=caller.user_id)
    except GatewayError as exc:
        turn.failed(exc)
        raise
    turn.served(result.model, result.attempts, result.usage)
    response = jsonify(embeddings_out(result.body, result.model.id))
    response.headers.update(turn.headers(result.model, result.attempts))
    return response
