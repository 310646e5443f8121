"""Every /v1/responses answer, stream event, stored item list and error validates against OpenAI's
official Responses schemas (tests/data/openai-responses-schemas.json, MIT: openai-openapi.LICENSE)."""
import json
import pathlib

import jsonschema
import pytest
from referencing import Registry, Resource

from conftest import make_key, make_user
from fake_upstream import Fault
from helpers import gateway_config

SCHEMAS = json.loads((pathlib.Path(__file__).parent.parent / "data" / "openai-responses-schemas.json").read_text())
REGISTRY = Registry().with_resource("urn:openai", Resource.opaque(SCHEMAS))
EVENT_SCHEMAS = {"response.created": "ResponseCreatedEvent", "response.in_progress": "ResponseInProgressEvent",
                 "response.output_item.added": "ResponseOutputItemAddedEvent",
                 "response.output_item.done": "ResponseOutputItemDoneEvent",
                 "response.content_part.added": "ResponseContentPartAddedEvent",
                 "response.content_part.done": "ResponseContentPartDoneEvent",
                 "response.output_text.delta": "ResponseTextDeltaEvent",
                 "response.output_text.done": "ResponseTextDoneEvent",
                 "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
                 "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneEvent",
                 "response.completed": "ResponseCompletedEvent", "response.incomplete": "ResponseIncompleteEvent",
                 "response.failed": "ResponseFailedEvent", "error": "ResponseErrorEvent"}
TOOLS = [{"type": "function", "name": "lookup", "description": "Look a thing up",
          "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}]


def validate(instance, name):
    schema = {"$ref": f"urn:openai#/components/schemas/{name}"}
    jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(instance)


def stream_events(raw):
    """(event name, data) of each event of a Responses SSE body."""
    pairs = []
    for block in raw.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        pairs.append((lines["event"], json.loads(lines["data"])))
    return pairs


def validate_stream(raw):
    """Validate every event of a stream against its own schema and as a ResponseStreamEvent; return them."""
    pairs = stream_events(raw)
    for number, (name, data) in enumerate(pairs):
        assert data["type"] == name and data["sequence_number"] == number
        validate(data, EVENT_SCHEMAS[name])
        validate(data, "ResponseStreamEvent")
    return pairs


@pytest.fixture
def gateway(make_app, upstream):
    config = gateway_config(upstream, {"m1": {"provider": "openai"}, "c1": {"provider": "anthropic"},
                                       "g1": {"provider": "gemini"}}, keys=("key-a",), retry={"max_attempts": 1})
    config["demo"] = {"enabled": True}
    app = make_app(config)
    return app.test_client(), {"Authorization": f"Bearer {make_key(app, make_user(app))}"}


@pytest.mark.parametrize("model", ["m1", "c1", "g1", "demo-chat"])
@pytest.mark.parametrize("tools", [None, TOOLS], ids=["text", "tools"])
def test_answers_and_stream_events_validate(gateway, model, tools):
    """Answers (text and function calls) and every stream event from every family validate."""
    client, headers = gateway
    request = {"model": model, "input": "hi", "instructions": "Be brief.", **({"tools": tools} if tools else {})}
    response = client.post("/v1/responses", json=request, headers=headers)
    assert response.status_code == 200, response.get_json()
    validate(response.get_json(), "Response")
    kinds = [item["type"] for item in response.get_json()["output"]]
    assert kinds == (["function_call"] if tools and model != "demo-chat" else ["message"])
    pairs = validate_stream(client.post("/v1/responses", json={**request, "stream": True}, headers=headers).get_data())
    assert pairs[0][0] == "response.created" and pairs[-1][0] == "response.completed"
    response_id = pairs[-1][1]["response"]["id"]
    validate(client.get(f"/v1/responses/{response_id}", headers=headers).get_json(), "Response")
    validate(client.get(f"/v1/responses/{response_id}/input_items", headers=headers).get_json(), "ResponseItemList")


def test_echoed_request_fields_validate(gateway):
    """A response repeating a json_schema text format, metadata, a user and a tool choice validates."""
    client, headers = gateway
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    response = client.post("/v1/responses", headers=headers, json={
        "model": "m1", "input": "hi", "metadata": {"team": "a"}, "user": "u-1", "tools": TOOLS,
        "tool_choice": {"type": "function", "name": "lookup"}, "max_output_tokens": 40, "temperature": 0.2,
        "text": {"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}}})
    assert response.status_code == 200, response.get_json()
    validate(response.get_json(), "Response")
    assert response.get_json()["metadata"] == {"team": "a"}


def test_stored_items_of_every_kind_validate(gateway):
    """Input items of every supported kind are listed as schema-valid ItemResources."""
    client, headers = gateway
    items = [{"role": "user", "content": [{"type": "input_text", "text": "weather?"},
                                          {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]},
             {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
             {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
             {"role": "assistant", "content": "It is sunny."}, {"role": "user", "content": "thanks"}]
    answer = client.post("/v1/responses", json={"model": "m1", "input": items, "tools": TOOLS}, headers=headers)
    assert answer.status_code == 200, answer.get_json()
    listed = client.get(f"/v1/responses/{answer.get_json()['id']}/input_items?order=asc", headers=headers).get_json()
    validate(listed, "ResponseItemList")
    assert [item["type"] for item in listed["data"]] == ["message", "function_call", "function_call_output",
                                                         "message", "message"]
    path = f"/v1/responses/{answer.get_json()['id']}/input_items"
    page = client.get(f"{path}?limit=2", headers=headers).get_json()          # newest first by default
    validate(page, "ResponseItemList")
    assert page["has_more"] and [i["id"] for i in page["data"]] == [i["id"] for i in listed["data"][:-3:-1]]
    rest = client.get(f"{path}?limit=5&after={page['last_id']}", headers=headers).get_json()
    assert not rest["has_more"] and [i["id"] for i in rest["data"]] == [i["id"] for i in listed["data"][2::-1]]


def test_errors_and_a_broken_stream_validate(gateway, upstream):
    """Refusals validate as ErrorResponse; a stream cut after its first content ends with a valid response.failed."""
    client, headers = gateway
    for response in (client.post("/v1/responses", json={"model": "m1"}, headers=headers),
                     client.post("/v1/responses", json={"model": "m1", "input": "hi"}),
                     client.get("/v1/responses/resp_nope", headers=headers)):
        assert response.status_code >= 400
        validate(response.get_json(), "ErrorResponse")
    upstream.script(Fault.cut(after=2), model="m1", times=1)
    pairs = validate_stream(client.post("/v1/responses", json={"model": "m1", "input": "hi", "stream": True},
                                        headers=headers).get_data())
    assert pairs[-1][0] == "response.failed"
