"""POST /v1/moderations, relayed to OpenAI-compatible upstreams of `moderation` models."""
from blueprints.api import bp, read_json_body
from blueprints.api.auth import authenticate
from blueprints.api.relayed import relay
from gateway import validation


@bp.post("/moderations")
def create_moderation():
    caller = authenticate()
    return relay(caller, "moderations", validation.moderations_request(read_json_body()))
