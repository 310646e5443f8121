"""POST /v1/responses and the stored responses: translation to chat for every family, function
tools, previous_response_id (owner-scoped, across providers), billing and logging like chat,
refusals that change nothing, and an honest broken stream; driven through openai-python too."""
import json
import openai
import pytest
import sqlalchemy as sa

from conftest import make_key, make_user
from extensions import db
from fake_upstream import Fault
from gateway.responses_api import usage_out
from helpers import gateway_config, live_server
from models import RequestLog, StoredResponse, User, credit
from test_responses_schemas import TOOLS, stream_events

PRICED = {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}


@pytest.fixture
def setup(make_app, upstream):
    """m1 (OpenAI family) and c1 (Anthropic family) in one group, priced; alice with 100 credits and bob."""
    config = gateway_config(upstream, {"m1": {"provider": "openai", **PRICED}, "c1": {"provider": "anthropic", **PRICED}},
                            {"g": ["m1", "c1"]}, keys=("key-a",), retry={"max_attempts": 1})
    app = make_app(config)
    alice, bob = make_user(app), make_user(app, "bob")
    with app.app_context():
        credit.grant(alice, 100_000_000)
        db.session.commit()
    return app, alice, {"Authorization": f"Bearer {make_key(app, alice)}"}, {"Authorization": f"Bearer {make_key(app, bob)}"}


def ledger(app, user_id):
    """(balance, the request-log rows as (endpoint, status, cost))."""
    with app.app_context():
        rows = db.session.execute(sa.select(RequestLog.endpoint, RequestLog.status, RequestLog.cost)
                                  .where(RequestLog.user_id == user_id).order_by(RequestLog.id)).all()
        return db.session.get(User, user_id).balance, [tuple(row) for row in rows]


def stored(app):
    with app.app_context():
        return {row.id: row.status for row in db.session.scalars(sa.select(StoredResponse))}


def test_request_becomes_the_chat_request_the_upstream_receives(setup, upstream):
    """instructions, input items, function tools, text.format json_schema and max_output_tokens are translated."""
    app, _, headers, _ = setup
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    response = app.test_client().post("/v1/responses", headers=headers, json={
        "model": "m1", "instructions": "Be brief.", "max_output_tokens": 50, "temperature": 0.5,
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
                  {"type": "function_call", "call_id": "call_9", "name": "lookup", "arguments": '{"x": 2}'},
                  {"type": "function_call_output", "call_id": "call_9", "output": "sunny"}],
        "tools": TOOLS, "tool_choice": "auto",
        "text": {"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}}})
    assert response.status_code == 200, response.get_json()
    sent = upstream.requests[0].body
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_9", "type": "function", "function": {"name": "lookup", "arguments": '{"x": 2}'}}]},
        {"role": "tool", "tool_call_id": "call_9", "content": "sunny"}]
    assert sent["tools"][0]["function"]["name"] == "lookup" and sent["tool_choice"] == "auto"
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {"name": "city", "schema": schema,
                                                                               "strict": True}}
    assert (sent["max_tokens"], sent["temperature"]) == (50, 0.5)
    body = response.get_json()
    assert body["status"] == "completed"
    assert json.loads(body["output"][0]["content"][0]["text"]) == {"city": "example"}     # built from the schema
    assert body["usage"]["input_tokens"] == upstream.usage[0] and body["usage"]["output_tokens"] == upstream.usage[1]


def test_function_call_then_its_output_over_previous_response_id(setup, upstream):
    """A tool call comes back as a function_call item; its output sent with previous_response_id continues
    the stored conversation, here on another provider family (the chain becomes chat messages)."""
    app, _, headers, _ = setup
    client = app.test_client()
    first = client.post("/v1/responses", headers=headers, json={"model": "m1", "input": "weather?", "tools": TOOLS})
    call = first.get_json()["output"][0]
    assert (call["type"], call["name"], call["arguments"]) == ("function_call", "lookup", '{"x": 1}')
    second = client.post("/v1/responses", headers=headers, json={
        "model": "c1", "previous_response_id": first.get_json()["id"], "tools": TOOLS,
        "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]})
    assert second.status_code == 200, second.get_json()
    assert second.headers["X-Gateway-Model"] == "c1"
    assert second.get_json()["status"] == "completed" and second.get_json()["previous_response_id"] == first.get_json()["id"]
    sent = upstream.requests[1].body           # Anthropic's wire format: the whole conversation arrived
    assert sent["messages"][0] == {"role": "user", "content": [{"type": "text", "text": "weather?"}]}
    assert sent["messages"][1]["content"][0]["type"] == "tool_use"
    assert sent["messages"][2]["content"][0]["tool_use_id"] == call["call_id"]


def test_served_responses_are_charged_logged_and_stored_per_owner(setup, upstream):
    """A response is charged and logged like chat; GET, input_items and DELETE see only the owner's."""
    app, alice, headers, bob = setup
    client = app.test_client()
    answer = client.post("/v1/responses", headers=headers, json={"model": "m1", "input": "hi"}).get_json()
    balance, rows = ledger(app, alice)
    assert rows == [("responses", 200, 12 * 1000 + 7 * 2000)] and balance == 100_000_000 - rows[0][2]
    path = f"/v1/responses/{answer['id']}"
    assert client.get(path, headers=headers).get_json() == answer
    items = client.get(path + "/input_items", headers=headers).get_json()["data"]
    assert [(i["role"], i["content"][0]["text"]) for i in items] == [("user", "hi")]
    for query, param in (("limit=abc", "limit"), ("limit=0", "limit"), ("order=up", "order")):
        bad = client.get(f"{path}/input_items?{query}", headers=headers)
        assert bad.status_code == 400 and bad.get_json()["error"]["param"] == param
    for method, suffix in (("get", ""), ("get", "/input_items"), ("delete", "")):
        refused = getattr(client, method)(path + suffix, headers=bob)
        assert refused.status_code == 404 and refused.get_json()["error"]["type"] == "invalid_request_error"
    continued = client.post("/v1/responses", headers=bob, json={"model": "m1", "input": "x",
                                                                 "previous_response_id": answer["id"]})
    assert continued.status_code == 404 and continued.get_json()["error"]["param"] == "previous_response_id"
    assert len(upstream.requests) == 1
    assert client.delete(path, headers=headers).get_json() == {"id": answer["id"], "object": "response", "deleted": True}
    assert client.get(path, headers=headers).status_code == 404


def test_a_long_chain_is_replayed_in_order_and_a_missing_link_is_404(setup, upstream):
    """Every earlier turn of a chain reaches the upstream, oldest first; a chain with a deleted turn is 404."""
    app, _, headers, _ = setup
    client = app.test_client()
    ids = []
    for word in ("one", "two", "three"):
        body = {"model": "m1", "input": word, **({"previous_response_id": ids[-1]} if ids else {})}
        ids.append(client.post("/v1/responses", headers=headers, json=body).get_json()["id"])
    sent = upstream.requests[-1].body["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("user", "one"), ("assistant", upstream.reply_text), ("user", "two"), ("assistant", upstream.reply_text),
        ("user", "three")]
    assert client.delete(f"/v1/responses/{ids[1]}", headers=headers).status_code == 200
    broken = client.post("/v1/responses", headers=headers, json={"model": "m1", "input": "four",
                                                                  "previous_response_id": ids[2]})
    assert broken.status_code == 404 and len(upstream.requests) == 3


def test_store_false_stores_nothing(setup):
    app, _, headers, _ = setup
    answer = app.test_client().post("/v1/responses", headers=headers, json={"model": "m1", "input": "hi", "store": False})
    assert answer.status_code == 200 and answer.get_json()["store"] is False
    assert stored(app) == {}


@pytest.mark.parametrize("body, param", [
    ({"model": "m1"}, "input"),
    ({"model": "m1", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"model": "m1", "input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
    ({"model": "m1", "input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"model": "m1", "input": "hi", "text": {"format": {"type": "json_schema"}}}, "text.format"),
    ({"model": "m1", "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "m1", "input": "hi", "temperature": 5}, "temperature"),
    ({"model": "m1", "input": "hi", "store": "yes"}, "store"),
    ({"model": "m1", "input": "hi", "background": True}, "background"),
    ({"model": "m1", "input": "hi", "instructions": ["x"]}, "instructions"),
    ({"model": "m1", "input": "hi", "metadata": {"n": 1}}, "metadata"),
    ({"model": "m1", "input": "hi", "previous_response_id": 7}, "previous_response_id"),
    ({"input": "hi"}, "model"),
])
def test_bad_requests_name_the_param_and_change_nothing(setup, upstream, body, param):
    """400 in OpenAI's shape naming the parameter; no upstream call, no charge, no log row, nothing stored."""
    app, alice, headers, _ = setup
    response = app.test_client().post("/v1/responses", headers=headers, json=body)
    assert response.status_code == 400
    assert (response.get_json()["error"]["type"], response.get_json()["error"]["param"]) == ("invalid_request_error", param)
    assert upstream.requests == [] and stored(app) == {}
    assert ledger(app, alice) == (100_000_000, [])


def test_stream_relays_typed_events_and_is_stored(setup, upstream):
    """Text deltas add up to the answer; the completed response is stored and billed."""
    app, alice, headers, _ = setup
    raw = app.test_client().post("/v1/responses", headers=headers,
                                 json={"model": "m1", "input": "hi", "stream": True}).get_data()
    pairs = stream_events(raw)
    names = [name for name, _ in pairs]
    assert names[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert names[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert "".join(d["delta"] for n, d in pairs if n == "response.output_text.delta") == upstream.reply_text
    final = pairs[-1][1]["response"]
    assert final["usage"]["total_tokens"] == sum(upstream.usage)
    assert stored(app) == {final["id"]: "completed"}
    assert ledger(app, alice)[1] == [("responses", 200, 12 * 1000 + 7 * 2000)]


def test_stream_of_a_function_call(setup):
    app, _, headers, _ = setup
    pairs = stream_events(app.test_client().post("/v1/responses", headers=headers, json={
        "model": "m1", "input": "weather?", "tools": TOOLS, "stream": True}).get_data())
    names = [name for name, _ in pairs]
    assert "response.function_call_arguments.delta" in names
    done = next(d for n, d in pairs if n == "response.function_call_arguments.done")
    assert (done["name"], done["arguments"]) == ("lookup", '{"x": 1}')
    assert pairs[-1][1]["response"]["output"][0]["type"] == "function_call"


def test_stream_cut_after_first_content_ends_failed_and_is_stored_failed(setup, upstream):
    """Cut after its first content: response.failed, never response.completed; logged 502, stored failed."""
    app, alice, headers, _ = setup
    upstream.script(Fault.cut(after=2), model="m1", times=1)
    pairs = stream_events(app.test_client().post("/v1/responses", headers=headers,
                                                 json={"model": "m1", "input": "hi", "stream": True}).get_data())
    names = [name for name, _ in pairs]
    assert "response.output_text.delta" in names and "response.completed" not in names
    assert names[-1] == "response.failed"
    failed = pairs[-1][1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert stored(app) == {failed["id"]: "failed"}
    assert ledger(app, alice)[1][0][:2] == ("responses", 502)


def test_fails_over_before_committing(setup, upstream):
    """An upstream error before any content falls back to the group's next model, as chat does."""
    app, _, headers, _ = setup
    upstream.script(Fault.status(500), model="m1")
    for stream in (False, True):
        response = app.test_client().post("/v1/responses", headers=headers,
                                          json={"model": "m1", "input": "hi", "stream": stream})
        assert response.status_code == 200 and response.headers["X-Gateway-Model"] == "c1"
        response.get_data()


def test_usage_details_are_mapped():
    """Cached and reasoning tokens of a chat usage reach the Responses usage."""
    usage = usage_out({"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 4},
                       "completion_tokens_details": {"reasoning_tokens": 3}})
    assert usage == {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
                     "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 3}, "total_tokens": 15}


def test_openai_python_sdk(setup, upstream):
    """openai-python's responses.create, non-stream and stream, and a conversation over previous_response_id."""
    app, _, headers, _ = setup
    with live_server(app) as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key=headers["Authorization"][7:], max_retries=0)
        first = client.responses.create(model="m1", input="Say hello", instructions="Be brief.")
        assert first.output_text == upstream.reply_text and first.usage.total_tokens == sum(upstream.usage)
        second = client.responses.create(model="m1", input="Again", previous_response_id=first.id)
        assert second.previous_response_id == first.id
        assert [m["role"] for m in upstream.requests[-1].body["messages"]] == ["user", "assistant", "user"]
        with client.responses.stream(model="m1", input="Stream it") as stream:
            text = "".join(event.delta for event in stream if event.type == "response.output_text.delta")
            final = stream.get_final_response()
        assert text == upstream.reply_text == final.output_text
        events = list(client.responses.create(model="m1", input="raw events", stream=True))
        assert events[-1].type == "response.completed"
        assert client.responses.retrieve(final.id).id == final.id
        assert [item.type for item in client.responses.input_items.list(final.id)] == ["message"]
        upstream.script(Fault.cut(after=2), model="m1", times=1)
        events = list(client.responses.create(model="m1", input="cut", stream=True))
        assert events[-1].type == "response.failed"
