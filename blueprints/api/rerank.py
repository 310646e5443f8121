"""POST /v1/rerank (the vLLM, Jina and Cohere shape), relayed to OpenAI-compatible upstreams of `rerank` models."""
from blueprints.api import bp, read_json_body
from blueprints.api.auth import authenticate
from blueprints.api.relayed import relay
from gateway import validation


@bp.post("/rerank")
def rerank():
    caller = authenticate()
    return relay(caller, "rerank", validation.rerank_request(read_json_body()))
