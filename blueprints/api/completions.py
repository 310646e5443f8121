"""POST /v1/completions: legacy text completions, served through chat (routed, billed and logged like it)."""
import time

from flask import Response, g, jsonify

from blueprints.api import bp, read_json_body
from blueprints.api.auth import authenticate
from blueprints.api.chat import SSE_HEADERS, route_chat
from blueprints.api.records import Turn, settled
from gateway import completions_api
from gateway.errors import StreamInterrupted
from gateway.shapes import error_body
from gateway.sse import DONE, encode_data


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
        return Response(_sse(outcome, g.request_id, turn), mimetype="text/event-stream", headers=headers)
    turn.served(outcome.model, outcome.attempts, outcome.usage)
    response = jsonify(completions_api.completion_from_chat(outcome.body, g.request_id, outcome.model.id))
    response.headers.update(turn.headers(outcome.model, outcome.attempts))
    return response


def _sse(session, request_id, turn):
    """Relay a committed stream as text_completion chunks; a later failure ends with an error event and no [DONE]."""
    created, model_id = int(time.time()), session.model.id
    with settled(session, turn) as end:
        try:
            for chunk in session:
                yield encode_data(completions_api.chunk_from_chat(chunk, request_id, model_id, created))
            yield DONE
        except StreamInterrupted as exc:
            end.update(status=502, error=exc.message)
            yield encode_data(error_body(exc.message, "server_error", "stream_interrupted"))
