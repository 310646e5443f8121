"""POST /v1/images/generations, relayed to OpenAI-compatible upstreams of `image` models (billed per image)."""
from blueprints.api import bp, read_json_body
from blueprints.api.auth import authenticate
from blueprints.api.relayed import relay
from gateway import validation


@bp.post("/images/generations")
def generate_images():
    caller = authenticate()
    return relay(caller, "images/generations", validation.images_request(read_json_body()))
