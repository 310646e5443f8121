"""Every /v1 answer validates against OpenAI's official schemas, so strictly typed clients work."""
import json
import pathlib

import jsonschema
import pytest
from referencing import Registry, Resource

from conftest import make_key, make_user
from fake_upstream import Fault
from helpers import gateway_config, sse_data



def json_schema(node):
    """OpenAPI 3.0's `nullable: true` in JSON Schema terms (jsonschema knows only the latter)."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: json_schema(value) for key, value in node.items()}
    if node.pop("nullable", False):
        node = {"anyOf": [node, {"type": "null"}]}
    return node


SCHEMAS = json_schema(json.loads((pathlib.Path(__file__).parent.parent / "data" / "openai-schemas.json").read_text()))
REGISTRY = Registry().with_resource("urn:openai", Resource.opaque(SCHEMAS))
HELLO = [{"role": "user", "content": "hi"}]


def validate(instance, name):
    schema = {"$ref": f"urn:openai#/components/schemas/{name}"}
    jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(instance)


@pytest.fixture
def gateway(make_app, upstream):
    config = gateway_config(upstream, {"m1": {"provider": "openai"}, "e1": {"provider": "openai", "kind": "embedding"},
                                       "c1": {"provider": "anthropic"}, "g1": {"provider": "gemini"}},
                            {"g": ["m1"]}, keys=("key-a",), retry={"max_attempts": 1})
    config["demo"] = {"enabled": True}
    app = make_app(config)
    return app.test_client(), {"Authorization": f"Bearer {make_key(app, make_user(app))}"}


@pytest.mark.parametrize("model", ["m1", "c1", "g1", "demo-chat"])
def test_completions_and_chunks_validate(gateway, model):
    """Completions and stream chunks from every family validate as CreateChatCompletion(Stream)Response."""
    client, headers = gateway
    response = client.post("/v1/chat/completions", json={"model": model, "messages": HELLO}, headers=headers)
    assert response.status_code == 200, response.get_json()
    validate(response.get_json(), "CreateChatCompletionResponse")
    body = {"model": model, "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}
    events = sse_data(client.post("/v1/chat/completions", json=body, headers=headers).get_data())
    assert events[-1] == "[DONE]"
    for event in events[:-1]:
        validate(event, "CreateChatCompletionStreamResponse")


def test_tool_call_answers_validate(gateway):
    """A tool-call answer validates too."""
    client, headers = gateway
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    response = client.post("/v1/chat/completions", json={"model": "m1", "messages": HELLO, "tools": tools},
                           headers=headers)
    validate(response.get_json(), "CreateChatCompletionResponse")
    assert response.get_json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "lookup"


def test_models_and_embeddings_validate(gateway):
    """The model list, one model and an embedding answer validate."""
    client, headers = gateway
    validate(client.get("/v1/models", headers=headers).get_json(), "ListModelsResponse")
    validate(client.get("/v1/models/m1", headers=headers).get_json(), "Model")
    for model in ("e1", "demo-embed"):
        response = client.post("/v1/embeddings", json={"model": model, "input": ["a", "b"]}, headers=headers)
        assert response.status_code == 200, response.get_json()
        validate(response.get_json(), "CreateEmbeddingResponse")


def test_errors_and_stream_error_events_validate(gateway, upstream):
    """Error bodies of every kind and the in-stream error event validate as ErrorResponse."""
    client, headers = gateway
    answers = [
        client.post("/v1/chat/completions", json={"model": "m1"}, headers=headers),
        client.post("/v1/chat/completions", json={"model": "nope", "messages": HELLO}, headers=headers),
        client.post("/v1/chat/completions", json={"model": "m1", "messages": HELLO}),
        client.get("/v1/models/nope", headers=headers),
        client.get("/v1/nothing-here", headers=headers),
    ]
    upstream.script(Fault.status(500), model="m1", times=1)
    answers.append(client.post("/v1/chat/completions", json={"model": "m1", "messages": HELLO}, headers=headers))
    for response in answers:
        assert response.status_code >= 400
        validate(response.get_json(), "ErrorResponse")
    upstream.script(Fault.cut(after=2), model="m1", times=1)
    response = client.post("/v1/chat/completions", json={"model": "m1", "messages": HELLO, "stream": True},
                           headers=headers)
    events = sse_data(response.get_data())
    assert events, response.get_data()
    validate(events[-1], "ErrorResponse")
