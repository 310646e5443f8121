"""/v1/messages takes everything Claude Code and the Anthropic SDK send: an Anthropic upstream gets
the request whole (cache hints, thinking signatures, betas, top_k, output_config), another family
gets its own form with what it cannot carry listed in X-Gateway-Dropped-Params or refused."""
import base64
import json

import anthropic
import pytest
from pydantic import BaseModel

from conftest import make_key, make_user
from helpers import gateway_config, live_server

PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF").decode()
BETA = "prompt-caching-2024-07-31,interleaved-thinking-2025-05-14"
SYSTEM = [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
HISTORY = [
    {"role": "user", "content": [{"type": "text", "text": "Read this.", "cache_control": {"type": "ephemeral"}},
                                 {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                                                 "data": PDF}}]},
    {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "The user wants a file read.", "signature": "sig-from-earlier-turn"},
        {"type": "tool_use", "id": "toolu_9", "name": "read_file", "input": {"path": "a.txt"}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "is_error": True,
                                  "content": "no such file"}]},
    {"role": "system", "content": "Answer in one line."},
]
TOOLS = [{"name": "read_file", "description": "Read a file", "cache_control": {"type": "ephemeral"},
          "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]


@pytest.fixture
def served(make_app, upstream):
    config = gateway_config(upstream, {"claude-x": {"provider": "anthropic"}, "gpt-x": {"provider": "openai"}},
                            keys=("key-a",))
    app = make_app(config)
    key = make_key(app, make_user(app))
    with live_server(app) as base:
        yield anthropic.Anthropic(base_url=base, api_key=key, max_retries=0,
                                  default_headers={"anthropic-beta": BETA})


def _stream(client, model):
    with client.messages.stream(model=model, max_tokens=2000, system=SYSTEM, messages=HISTORY, tools=TOOLS,
                                thinking={"type": "enabled", "budget_tokens": 1500}, extra_body={"top_k": 5}) as stream:
        return stream.get_final_message(), stream.response.headers


def test_anthropic_upstream_gets_the_request_whole(served, upstream):
    """Cache markers, the beta header, the thinking signature, top_k, is_error and the document reach an
    Anthropic upstream unchanged; the system message inside `messages` joins `system`; the answer's
    thinking block keeps its signature and the usage reports the cache."""
    upstream.cache = (100, 40)
    message, headers = _stream(served, "claude-x")
    sent = upstream.requests[0]
    assert sent.headers["anthropic-beta"] == BETA
    assert sent.headers["anthropic-version"] == served.default_headers["anthropic-version"]       # the caller's own
    body = sent.body
    assert body["system"] == SYSTEM + [{"type": "text", "text": "Answer in one line."}]
    assert body["messages"] == HISTORY[:3]          # thinking signature, cache_control, document, is_error intact
    assert body["tools"] == TOOLS and body["top_k"] == 5
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1500}
    assert message.content[0].type == "thinking" and message.content[0].signature == "fake-signature-0123456789"
    assert (message.content[1].type, message.content[1].name, message.stop_reason) == ("tool_use", "read_file", "tool_use")
    assert message.id.startswith("msg_") and message.model == "claude-x"
    assert (message.usage.cache_read_input_tokens, message.usage.cache_creation_input_tokens) == (100, 40)
    assert headers["X-Gateway-Dropped-Params"] == ""
    assert headers["request-id"] == headers["X-Request-ID"] != ""


def test_openai_upstream_gets_its_own_form_and_the_caller_sees_what_was_dropped(served, upstream):
    """For an OpenAI upstream: thinking becomes reasoning_effort, the PDF a file part, the tool error a
    marked result, the inline system message stays in place; what has no equivalent is listed."""
    message, headers = _stream(served, "gpt-x")
    body = upstream.requests[0].body
    assert body["reasoning_effort"] == "low"
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "system"]
    assert body["messages"][1]["content"][1] == {"type": "file", "file": {
        "filename": "document.pdf", "file_data": f"data:application/pdf;base64,{PDF}"}}
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "toolu_9", "content": "Error: no such file"}
    assert "thinking" not in str(body["messages"]) and "cache_control" not in str(body)
    assert set(headers["X-Gateway-Dropped-Params"].split(", ")) == {"cache_control", "thinking_blocks", "top_k",
                                                                    "anthropic-beta"}
    assert message.content[0].text == upstream.reply_text
    assert "anthropic-beta" not in upstream.requests[0].headers


def test_server_tool_on_another_family_is_refused_without_an_upstream_call(served, upstream):
    """An Anthropic server tool cannot work elsewhere: 400 naming it, and no upstream call."""
    tools = [{"type": "web_search_20250305", "name": "web_search"}]
    with pytest.raises(anthropic.BadRequestError, match=r"tools\[0\]"):
        served.messages.create(model="gpt-x", max_tokens=50, tools=tools, messages=[{"role": "user", "content": "hi"}])
    assert upstream.requests == []
    served.messages.create(model="claude-x", max_tokens=50, tools=tools, messages=[{"role": "user", "content": "hi"}])
    assert upstream.requests[0].body["tools"] == tools


def test_count_tokens_asks_anthropic_and_estimates_elsewhere(served, upstream):
    """count_tokens: an Anthropic upstream's own count (its endpoint, with the betas); else an estimate, no call."""
    counted = served.messages.count_tokens(model="claude-x", system=SYSTEM, messages=HISTORY[:3], tools=TOOLS)
    sent = upstream.requests[0]
    assert sent.path == "/v1/messages/count_tokens" and sent.headers["anthropic-beta"] == BETA
    assert "max_tokens" not in sent.body and sent.body["messages"] == HISTORY[:3]
    assert counted.input_tokens == len(json.dumps(sent.body)) // 4
    estimated = served.messages.count_tokens(model="gpt-x", messages=[{"role": "user", "content": "hello there"}])
    assert 0 < estimated.input_tokens < 50 and len(upstream.requests) == 1


class Weather(BaseModel):
    city: str
    degrees: int
    sunny: bool


@pytest.mark.parametrize("model", ["claude-x", "gpt-x"])
def test_messages_parse_gets_the_schema_answered(served, upstream, model):
    """messages.parse: output_config.format reaches Anthropic as is, and OpenAI as response_format json_schema;
    either way the SDK parses the answer into the model."""
    message = served.messages.parse(model=model, max_tokens=200, output_format=Weather,
                                    messages=[{"role": "user", "content": "Weather in Paris?"}])
    assert message.parsed_output == Weather(city="example", degrees=3, sunny=True)
    body = upstream.requests[0].body
    if model == "claude-x":
        assert body["output_config"]["format"]["type"] == "json_schema"
    else:
        assert body["response_format"]["type"] == "json_schema"
        assert set(body["response_format"]["json_schema"]["schema"]["properties"]) == {"city", "degrees", "sunny"}


def test_models_list_in_anthropic_shape(served):
    """The Anthropic SDK (which sends anthropic-version) lists models in its own shape."""
    models = list(served.models.list())
    assert {m.id for m in models} == {"claude-x", "gpt-x"} and all(m.type == "model" for m in models)
    assert served.models.retrieve("claude-x").display_name == "claude-x"


def test_openai_usage_details_come_back_in_anthropic_terms(served, upstream):
    """OpenAI counts cached tokens inside prompt_tokens; Anthropic callers get them apart, stream or not."""
    upstream.cache = (5, 0)
    request = {"model": "gpt-x", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    usage = served.messages.create(**request).usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (7, 5, 7)
    with served.messages.stream(**request) as stream:
        usage = stream.get_final_message().usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (7, 5, 7)
