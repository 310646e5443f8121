"""Translation never loses a feature silently (SPEC 2.1), seen through the openai SDK: structured output
emulated as one forced tool on Anthropic and Gemini, native on OpenAI; reasoning_effort, metadata and store reach an
OpenAI upstream and become a thinking budget on Anthropic; what a family ignores is listed in
X-Gateway-Dropped-Params; what cannot work is a 400 naming it, before any upstream call."""
import openai
import pytest
from pydantic import BaseModel

from conftest import make_key, make_user
from helpers import gateway_config, live_server

HELLO = [{"role": "user", "content": "Weather in Paris?"}]


class Weather(BaseModel):
    city: str
    degrees: int
    sunny: bool


@pytest.fixture
def client(make_app, upstream):
    config = gateway_config(upstream, {"gpt-x": {"provider": "openai"}, "claude-x": {"provider": "anthropic"},
                                       "gemini-x": {"provider": "gemini"},
                                       "embed-x": {"provider": "openai", "kind": "embedding"},
                                       "gemini-embed": {"provider": "gemini", "kind": "embedding"}}, keys=("key-a",))
    app = make_app(config)
    key = make_key(app, make_user(app))
    with live_server(app) as base:
        yield openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


@pytest.mark.parametrize("model", ["gpt-x", "claude-x", "gemini-x"])
def test_parse_answers_the_schema_on_every_family(client, upstream, model):
    """chat.completions.parse gets a Weather back whichever family answers, non-stream and stream."""
    completion = client.chat.completions.parse(model=model, messages=HELLO, response_format=Weather)
    assert completion.choices[0].message.parsed == Weather(city="example", degrees=3, sunny=True)
    assert completion.choices[0].finish_reason == "stop"
    with client.chat.completions.stream(model=model, messages=HELLO, response_format=Weather) as stream:
        assert stream.get_final_completion().choices[0].message.parsed.city == "example"
    body = upstream.requests[0].body
    if model == "claude-x":         # one forced tool whose arguments are the answer
        assert body["tool_choice"] == {"type": "tool", "name": "Weather"}
        assert body["tools"][-1]["name"] == "Weather" and "response_format" not in body
    elif model == "gemini-x":       # likewise: one forced function
        assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["Weather"]}}
        declaration = body["tools"][0]["functionDeclarations"][-1]
        assert set(declaration["parametersJsonSchema"]["properties"]) == {"city", "degrees", "sunny"}
    else:
        assert body["response_format"]["json_schema"]["name"] == "Weather"


def test_reasoning_metadata_store_reach_openai_and_nothing_is_dropped(client, upstream):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-x", messages=HELLO, reasoning_effort="high", metadata={"team": "a"}, store=True,
        parallel_tool_calls=False, tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}])
    body = upstream.requests[0].body
    assert (body["reasoning_effort"], body["metadata"], body["store"], body["parallel_tool_calls"]) == (
        "high", {"team": "a"}, True, False)
    assert raw.headers["X-Gateway-Dropped-Params"] == ""


def test_anthropic_thinks_for_reasoning_effort_and_lists_what_it_ignores(client, upstream):
    """reasoning_effort becomes a thinking budget within max_tokens; its thinking comes back as
    reasoning_content; metadata, store and seed have no Anthropic equivalent, and a thinking Anthropic
    model takes no temperature: all are listed."""
    raw = client.chat.completions.with_raw_response.create(
        model="claude-x", messages=HELLO, reasoning_effort="medium", max_tokens=3000, metadata={"team": "a"},
        store=True, seed=7, temperature=0.5)
    body = upstream.requests[0].body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2999} and "temperature" not in body
    assert "metadata" not in body and "seed" not in body
    assert set(raw.headers["X-Gateway-Dropped-Params"].split(", ")) == {"seed", "store", "metadata", "temperature"}
    message = raw.parse().choices[0].message
    assert message.content == upstream.reply_text and message.model_extra["reasoning_content"] == "Let me think."


def test_what_cannot_work_is_refused_before_any_upstream_call(client, upstream):
    """logprobs cannot come from Anthropic: 400 naming the parameter, nothing sent, nothing charged."""
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="claude-x", messages=HELLO, logprobs=True)
    assert refused.value.body["param"] == "logprobs" and refused.value.body["code"] == "unsupported_parameter"
    assert upstream.requests == []


def test_embeddings_take_token_ids(client, upstream):
    """LangChain's OpenAIEmbeddings sends token-id arrays: passed through to OpenAI-compatible upstreams;
    Gemini embeds text only, so it is a 400 naming `input`, without an upstream call."""
    result = client.embeddings.create(model="embed-x", input=[[101, 2023, 102], [7592]])
    assert len(result.data) == 2 and upstream.requests[0].body["input"] == [[101, 2023, 102], [7592]]
    assert client.embeddings.create(model="embed-x", input=[1, 2, 3]).data
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="gemini-embed", input=[[101, 2023]])
    assert refused.value.body["param"] == "input" and len(upstream.requests) == 2
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="embed-x", input=[[1, -2]])


def test_pdf_file_parts_reach_families_that_read_them(client, upstream):
    """A `file` part (inline PDF) becomes Anthropic's document block; an OpenAI upstream gets it as is."""
    pdf = {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "Summarise"}, pdf]}]
    client.chat.completions.create(model="claude-x", messages=messages)
    assert upstream.requests[0].body["messages"][0]["content"][1] == {
        "type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}}
    client.chat.completions.create(model="gpt-x", messages=messages)
    assert upstream.requests[1].body["messages"][0]["content"][1] == pdf
