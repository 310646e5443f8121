"""/v1/responses passed natively to an OpenAI-compatible upstream's own /responses (`responses =
"native"`): the caller's body (built-in tools included) reaches it with the upstream model name and
`store: false`, its own object and events come back with the gateway's ids (schema-valid), billed,
logged and stored like the translated path; previous_response_id, fallback to a translated
candidate, a cut stream and the refusals of candidates that translate; driven through openai-python too."""
import json

import openai
import pytest

from conftest import make_key, make_user
from extensions import db
from fake_upstream import Fault
from gateway.config import ConfigError, parse
from helpers import gateway_config, live_server
from models import credit
from test_responses import PRICED, ledger, stored
from test_responses_schemas import EVENT_SCHEMAS, TOOLS, stream_events, validate

WEB_SEARCH = {"type": "web_search"}
COST = 12 * 1000 + 7 * 2000          # the fake upstream's usage (12 in, 7 out) at PRICED, in micro-USD
WEB_SEARCH_EVENTS = {"response.web_search_call.completed": "ResponseWebSearchCallCompletedEvent"}


@pytest.fixture
def setup(make_app, upstream):
    """n1 on a native OpenAI provider (two keys), then m1 on a translating one, in group g; c1
    (Anthropic) alone; alice with 100 credits."""
    config = gateway_config(upstream, {"n1": {"provider": "openai", "upstream_name": "up-native", **PRICED},
                                       "m1": {"provider": "openai", **PRICED}, "c1": {"provider": "anthropic", **PRICED}},
                            {"g": ["n1", "m1"]}, keys=("key-a",), retry={"max_attempts": 1})
    config["providers"]["native"] = {**config["providers"]["openai"], "api_keys": ["key-a", "key-b"],
                                     "responses": "native"}
    config["models"]["n1"]["provider"] = "native"
    app = make_app(config)
    alice = make_user(app)
    with app.app_context():
        credit.grant(alice, 100_000_000)
        db.session.commit()
    return app, alice, {"Authorization": f"Bearer {make_key(app, alice)}"}


def validate_native_stream(raw):
    """Every event validates (web search events included) and is numbered from 0 without a gap."""
    pairs = stream_events(raw)
    for number, (name, data) in enumerate(pairs):
        assert data["type"] == name and data["sequence_number"] == number
        validate(data, {**EVENT_SCHEMAS, **WEB_SEARCH_EVENTS}[name])
        validate(data, "ResponseStreamEvent")
    return pairs


def test_upstream_receives_the_callers_body_and_its_answer_is_relayed(setup, upstream):
    """A built-in tool, `include` and the rest reach /responses whole; the answer is the upstream's own
    object with the gateway's id, model and store, billed and logged from its usage, and stored."""
    app, alice, headers = setup
    response = app.test_client().post("/v1/responses", headers=headers, json={
        "model": "n1", "input": "news today?", "instructions": "Be brief.", "tools": [WEB_SEARCH, *TOOLS],
        "include": ["web_search_call.action.sources"], "models": ["m1"]})
    assert response.status_code == 200, response.get_json()
    (sent,) = upstream.requests
    assert (sent.family, sent.path, sent.key) == ("openai_responses", "/v1/responses", "key-a")
    assert sent.body == {"model": "up-native", "input": [{"role": "user", "content": "news today?"}],
                         "instructions": "Be brief.", "tools": [WEB_SEARCH, *TOOLS],
                         "include": ["web_search_call.action.sources"], "store": False,
                         "max_output_tokens": sent.body["max_output_tokens"]}
    assert sent.body["max_output_tokens"] > 0
    answer = response.get_json()
    validate(answer, "Response")
    assert answer["id"] == f"resp_{response.headers['X-Request-ID']}" and answer["model"] == "n1"
    assert answer["store"] is True and answer["max_output_tokens"] is None and [tool["type"] for tool in answer["tools"]] == ["web_search", "function"]
    assert [item["type"] for item in answer["output"]] == ["web_search_call", "function_call"]
    assert answer["usage"]["input_tokens"] == 12 and answer["usage"]["output_tokens"] == 7
    assert ledger(app, alice) == (100_000_000 - COST, [("responses", 200, COST)])
    assert stored(app) == {answer["id"]: "completed"}
    assert app.test_client().get(f"/v1/responses/{answer['id']}", headers=headers).get_json() == answer


def test_stream_relays_the_upstreams_events(setup, upstream):
    """The upstream's typed events, web search ones included, come through schema-valid with the gateway's
    response id and model and consecutive sequence numbers; stored and billed from response.completed."""
    app, alice, headers = setup
    raw = app.test_client().post("/v1/responses", headers=headers, json={
        "model": "n1", "input": "news today?", "tools": [WEB_SEARCH], "stream": True}).get_data()
    assert upstream.requests[0].body["stream"] is True and upstream.requests[0].family == "openai_responses"
    pairs = validate_native_stream(raw)
    names = [name for name, _ in pairs]
    assert names[:2] == ["response.created", "response.in_progress"] and names[-1] == "response.completed"
    assert "response.web_search_call.completed" in names
    responses = [data["response"] for _, data in pairs if "response" in data]
    assert {(r["id"], r["model"], r["store"]) for r in responses} == {(responses[0]["id"], "n1", True)}
    assert responses[0]["id"].startswith("resp_") and responses[0]["id"] != "resp_upstream1"
    text = "".join(data["delta"] for name, data in pairs if name == "response.output_text.delta")
    assert text == upstream.reply_text == pairs[-1][1]["response"]["output"][1]["content"][0]["text"]
    assert ledger(app, alice) == (100_000_000 - COST, [("responses", 200, COST)])
    assert stored(app) == {responses[0]["id"]: "completed"}


def test_a_streamed_function_call_is_relayed_and_billed(setup, upstream):
    """The upstream's function call events come through whole; the answer is stored and billed."""
    app, alice, headers = setup
    raw = app.test_client().post("/v1/responses", headers=headers,
                                 json={"model": "n1", "input": "weather?", "tools": TOOLS, "stream": True}).get_data()
    pairs = validate_native_stream(raw)
    names = [name for name, _ in pairs]
    assert "response.function_call_arguments.delta" in names and names[-1] == "response.completed"
    (call,) = pairs[-1][1]["response"]["output"]
    assert (call["type"], call["name"], call["arguments"]) == ("function_call", "lookup", '{"x": 1}')
    assert ledger(app, alice)[1] == [("responses", 200, COST)]
    assert stored(app) == {pairs[-1][1]["response"]["id"]: "completed"}


def test_reasoning_items_go_back_upstream_only_with_their_encrypted_content(setup, upstream):
    """An upstream that stored nothing cannot look a reasoning item up by id: a continuation sends it
    only when the earlier answer carried its encrypted content (`include`)."""
    app, _, headers = setup
    client = app.test_client()
    for include, kept in (([], []), (["reasoning.encrypted_content"], ["reasoning"])):
        first = client.post("/v1/responses", headers=headers, json={
            "model": "n1", "input": "think", "reasoning": {"effort": "low"}, "include": include}).get_json()
        validate(first, "Response")
        assert [item["type"] for item in first["output"]] == ["reasoning", "message"]
        client.post("/v1/responses", headers=headers,
                    json={"model": "n1", "input": "again", "previous_response_id": first["id"]})
        sent = [item.get("type", "message") for item in upstream.requests[-1].body["input"]]
        assert sent == ["message", *kept, "message", "message"]


def test_previous_response_id_continues_natively_and_then_translated(setup, upstream):
    """The gateway expands the stored conversation into `input` (its items as stored; no
    previous_response_id upstream); the same chain then continues on a translating candidate as chat messages."""
    app, _, headers = setup
    client = app.test_client()
    first = client.post("/v1/responses", headers=headers, json={"model": "n1", "input": "hi"}).get_json()
    second = client.post("/v1/responses", headers=headers,
                         json={"model": "n1", "input": "again", "previous_response_id": first["id"]})
    assert second.status_code == 200 and second.get_json()["previous_response_id"] == first["id"]
    sent = upstream.requests[-1].body
    assert "previous_response_id" not in sent and sent["store"] is False
    (asked,) = client.get(f"/v1/responses/{first['id']}/input_items", headers=headers).get_json()["data"]
    assert asked["content"] == [{"type": "input_text", "text": "hi"}]
    assert sent["input"] == [asked, *first["output"], {"role": "user", "content": "again"}]
    third = client.post("/v1/responses", headers=headers,
                        json={"model": "m1", "input": "once more", "previous_response_id": second.get_json()["id"]})
    assert third.status_code == 200 and upstream.requests[-1].family == "openai"
    assert [(m["role"], m["content"]) for m in upstream.requests[-1].body["messages"]] == [
        ("user", "hi"), ("assistant", upstream.reply_text), ("user", "again"), ("assistant", upstream.reply_text),
        ("user", "once more")]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_5xx_on_the_native_candidate_falls_back_to_a_translated_one(setup, upstream, stream):
    """The translated candidate gets the chat form and answers in the gateway's own Responses shape."""
    app, alice, headers = setup
    upstream.script(Fault.status(503), model="up-native")
    response = app.test_client().post("/v1/responses", headers=headers,
                                      json={"model": "n1", "input": "hi", "tools": TOOLS, "stream": stream})
    assert response.status_code == 200
    assert [(r.family, r.model) for r in upstream.requests] == [("openai_responses", "up-native"), ("openai", "m1")]
    assert "messages" in upstream.requests[1].body and upstream.requests[1].body["tools"][0]["type"] == "function"
    if stream:
        pairs = validate_native_stream(response.get_data())
        final = pairs[-1][1]["response"]
    else:
        final = response.get_json()
        validate(final, "Response")
    assert final["model"] == "m1" and [item["type"] for item in final["output"]] == ["function_call"]
    assert ledger(app, alice)[1] == [("responses", 200, COST)]


def test_a_rejected_key_fails_over_to_the_next_on_the_native_path(setup, upstream):
    """401 on the first key: the same request goes to /responses again with the next key."""
    app, _, headers = setup
    upstream.script(Fault.status(401, "bad key"), key="key-a")
    response = app.test_client().post("/v1/responses", headers=headers, json={"model": "n1", "input": "hi"})
    assert response.status_code == 200 and response.get_json()["model"] == "n1"
    assert [(r.family, r.key) for r in upstream.requests] == [("openai_responses", "key-a"),
                                                              ("openai_responses", "key-b")]
    assert upstream.requests[0].body == upstream.requests[1].body


def test_a_failed_response_from_the_native_upstream_is_a_failed_attempt(setup, upstream):
    """A 200 whose response says `failed` falls back like a 5xx: the translated candidate answers."""
    app, alice, headers = setup
    failed = {"id": "resp_x", "object": "response", "status": "failed", "output": [],
              "error": {"code": "server_error", "message": "the model failed"}}
    upstream.script(Fault.answer(json.dumps(failed).encode()), model="up-native")
    response = app.test_client().post("/v1/responses", headers=headers, json={"model": "n1", "input": "hi"})
    assert response.status_code == 200 and response.get_json()["model"] == "m1"
    assert [r.family for r in upstream.requests] == ["openai_responses", "openai"]
    assert ledger(app, alice)[1] == [("responses", 200, COST)]


@pytest.mark.parametrize("fault", [Fault.cut(after=4), Fault.in_stream_error(after=4)], ids=["cut", "error_event"])
def test_a_broken_native_stream_ends_with_response_failed(setup, upstream, fault):
    """Cut, or an `error` event, after its first text delta: the relay ends with a schema-valid
    response.failed, stored as failed, the log row 502."""
    app, alice, headers = setup
    upstream.script(fault, model="up-native", times=1)      # after created, in_progress, added, part, delta
    raw = app.test_client().post("/v1/responses", headers=headers,
                                 json={"model": "n1", "input": "hi", "stream": True}).get_data()
    pairs = validate_native_stream(raw)
    names = [name for name, _ in pairs]
    assert "response.output_text.delta" in names and names[-1] == "response.failed"
    assert "response.completed" not in names and len(upstream.requests) == 1
    failed = pairs[-1][1]["response"]
    assert failed["status"] == "failed" and failed["model"] == "n1"
    assert stored(app) == {failed["id"]: "failed"}
    assert ledger(app, alice)[1][0][:2] == ("responses", 502)


@pytest.mark.parametrize("model, rows", [("m1", [("responses", 400, 0)]), ("c1", [])])
@pytest.mark.parametrize("extra, param", [({"tools": [WEB_SEARCH]}, "tools[0].type"),
                                          ({"tools": TOOLS, "tool_choice": {"type": "web_search_preview"}}, "tool_choice")])
def test_a_candidate_that_translates_refuses_what_only_a_native_one_runs(setup, upstream, model, rows, extra, param):
    """m1 (OpenAI, translating; its group has the native n1) refuses when routing reaches it (logged, free);
    c1 (Anthropic, no native candidate) before routing, as the translation always did: 400 naming the
    parameter, no upstream call, no charge, nothing stored."""
    app, alice, headers = setup
    response = app.test_client().post("/v1/responses", headers=headers,
                                      json={"model": model, "input": "hi", **extra})
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == param
    assert upstream.requests == [] and stored(app) == {}
    assert ledger(app, alice) == (100_000_000, rows)


def test_a_native_only_request_is_not_translated_after_the_native_candidate_failed(setup, upstream):
    """A web search request whose native candidate fails is refused (400 naming the tool) by the
    translating fallback, never served without its tool; nothing is charged."""
    app, alice, headers = setup
    upstream.script(Fault.status(503), model="up-native")
    response = app.test_client().post("/v1/responses", headers=headers,
                                      json={"model": "n1", "input": "hi", "tools": [WEB_SEARCH]})
    assert response.status_code == 400 and response.get_json()["error"]["param"] == "tools[0].type"
    assert [r.family for r in upstream.requests] == ["openai_responses"]
    assert ledger(app, alice) == (100_000_000, [("responses", 400, 0)]) and stored(app) == {}


def test_openai_python_sdk_through_the_native_path(setup, upstream):
    """openai-python's responses.create, non-stream and stream, with a built-in tool, and a continuation."""
    app, _, headers = setup
    with live_server(app) as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key=headers["Authorization"][7:], max_retries=0)
        first = client.responses.create(model="n1", input="news?", tools=[{"type": "web_search"}])
        assert first.output_text == upstream.reply_text and first.model == "n1"
        assert [item.type for item in first.output] == ["web_search_call", "message"]
        second = client.responses.create(model="n1", input="more", previous_response_id=first.id)
        assert second.previous_response_id == first.id and upstream.requests[-1].body["input"][-1]["content"] == "more"
        with client.responses.stream(model="n1", input="Stream it", tools=[{"type": "web_search"}]) as stream:
            text = "".join(event.delta for event in stream if event.type == "response.output_text.delta")
            final = stream.get_final_response()
        assert text == upstream.reply_text == final.output_text and final.id.startswith("resp_")
        assert client.responses.retrieve(final.id).output_text == upstream.reply_text
        events = list(client.responses.create(model="n1", input="raw events", stream=True))
        assert [event.sequence_number for event in events] == list(range(len(events)))
        assert events[-1].type == "response.completed" and events[-1].response.model == "n1"
        upstream.script(Fault.cut(after=4), model="up-native", times=1)
        assert list(client.responses.create(model="n1", input="cut", stream=True))[-1].type == "response.failed"
    assert {r.family for r in upstream.requests} == {"openai_responses"}


@pytest.mark.parametrize("provider, message", [
    ({"type": "openai", "responses": "always"}, "[providers.p] responses: must be one of translate, native"),
    ({"type": "anthropic", "responses": "native"}, "[providers.p] responses: \"native\" is for the openai family"),
])
def test_the_setting_is_validated(provider, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse({"providers": {"p": {**provider, "base_url": "http://127.0.0.1:9"}}}, {})
