"""The official openai and anthropic SDKs get correct answers through a live gateway."""
import anthropic
import openai
import pytest

from conftest import make_key, make_user
from fake_upstream import Fault
from helpers import gateway_config, live_server

HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def served(make_app, upstream):
    config = gateway_config(upstream, {"m1": {"provider": "openai"}, "c1": {"provider": "anthropic"},
                                       "g1": {"provider": "gemini"}}, {"g": ["m1", "c1", "g1"]}, keys=("key-a",))
    config["demo"] = {"enabled": True}
    app = make_app(config)
    key = make_key(app, make_user(app))
    with live_server(app) as base:
        yield base, key


@pytest.mark.parametrize("model", ["m1", "c1", "g1", "demo-chat"])
def test_openai_sdk_non_stream_and_stream(served, upstream, model):
    """openai.OpenAI gets the text and usage, non-stream and stream, from every family and the demo."""
    base, key = served
    client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    completion = client.chat.completions.create(model=model, messages=HELLO)
    assert completion.model == model
    assert completion.choices[0].message.content
    assert completion.usage.total_tokens > 0
    if model != "demo-chat":
        assert completion.choices[0].message.content == upstream.reply_text
    pieces = list(client.chat.completions.create(model=model, messages=HELLO, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(p.choices[0].delta.content or "" for p in pieces if p.choices)
    assert text == completion.choices[0].message.content
    assert pieces[-1].usage.completion_tokens > 0


def test_openai_sdk_sees_errors_as_exceptions(served, upstream):
    """SDK users get typed exceptions: 401, 404 and a mid-stream break all raise."""
    base, key = served
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base + "/v1", api_key="sk-" + "0" * 43, max_retries=0).models.list()
    client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=HELLO)
    upstream.script(Fault.cut(after=2), model="m1", times=1)
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="m1", messages=HELLO, stream=True))


@pytest.mark.parametrize("model", ["m1", "c1", "g1"])
def test_anthropic_sdk_through_messages(served, upstream, model):
    """anthropic.Anthropic talks to /v1/messages, non-stream and stream, whatever family answers."""
    base, key = served
    client = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
    message = client.messages.create(model=model, max_tokens=100, messages=HELLO)
    assert message.content[0].text == upstream.reply_text
    assert message.usage.output_tokens == upstream.usage[1]
    with client.messages.stream(model=model, max_tokens=100, messages=HELLO) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == upstream.reply_text
    assert final.stop_reason == "end_turn"


def test_anthropic_sdk_errors(served):
    """Bad keys and unknown models raise the Anthropic SDK's typed errors."""
    base, key = served
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=base, api_key="sk-" + "0" * 43, max_retries=0).messages.create(
            model="m1", max_tokens=10, messages=HELLO)
    with pytest.raises(anthropic.NotFoundError):
        anthropic.Anthropic(base_url=base, api_key=key, max_retries=0).messages.create(
            model="nope", max_tokens=10, messages=HELLO)
