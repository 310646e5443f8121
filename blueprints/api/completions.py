"""POST /v1/completions: legacy text completions, served through chat (routed, billed and logged like it)."""
from flask import Response, g, jsonify

from blueprints.api import bp, read_json_body
from blueprints.api.auth import authenticate
from blueprints.api.chat import SSE_HEADERS, relay_sse, route_chat
from blueprints.api.records import Turn
from gateway import completions_api


@bp.post("/completions")
def completions():
    caller = authenticate()
    body = completions_api.chat_request(read_json_body())
    stream = body.get("stream") is True
    turn = Turn(caller, "completions", body["model"], stream)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    outcome = route_chat(caller, body, turn, stream, include_usage)
    if stream:
        headers = {**SSE_HEADERS, **turn.headers(outcome.model, outcome.attempts), "X-Request-ID": g.request_id}
        return Response(relay_sse(outcome, g.request_id, turn, completions_api.chunk_from_chat),
                        mimetype="text/event-stream", headers=headers)
    turn.served(outcome.model, outcome.attempts, outcome.usage)
    response = jsonify(completions_api.completion_from_chat(outcome.body, g.request_id, outcome.model.id))
    response.headers.update(turn.headers(outcome.model, outcome.attempts))
    return response

