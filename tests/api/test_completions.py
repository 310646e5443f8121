"""POST /v1/completions (legacy text completions): the prompt goes through chat to any upstream and
comes back as `text_completion`, streamed too; what chat cannot do is refused by name."""
import openai
import pytest
import sqlalchemy as sa

from conftest import make_key, make_user
from extensions import db
from fake_upstream import Fault
from helpers import gateway_config, live_server, sse_data
from models import RequestLog


@pytest.fixture
def gateway(make_app, upstream):
    app = make_app(gateway_config(upstream, ["m1"], keys=("key-a",), retry={"max_attempts": 1}))
    return app, {"Authorization": f"Bearer {make_key(app, make_user(app))}"}


def logged(app):
    with app.app_context():
        return [tuple(r) for r in db.session.execute(sa.select(RequestLog.endpoint, RequestLog.status))]


def test_openai_sdk_completions_non_stream_and_stream(gateway, upstream):
    """openai-python's completions.create gets the text and usage, and the stream's pieces add up to it."""
    app, headers = gateway
    with live_server(app) as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key=headers["Authorization"][7:], max_retries=0)
        completion = client.completions.create(model="m1", prompt="def add(a, b):", max_tokens=30, stop=["\n\n"])
        assert completion.object == "text_completion" and completion.model == "m1"
        assert completion.choices[0].text == upstream.reply_text and completion.choices[0].finish_reason == "stop"
        assert completion.usage.total_tokens == sum(upstream.usage)
        pieces = list(client.completions.create(model="m1", prompt="def add(a, b):", stream=True,
                                                stream_options={"include_usage": True}))
    assert "".join(p.choices[0].text for p in pieces if p.choices) == upstream.reply_text
    assert pieces[-1].usage.completion_tokens == upstream.usage[1]
    sent = upstream.requests[0].body
    assert sent["messages"] == [{"role": "user", "content": "def add(a, b):"}]
    assert (sent["max_tokens"], sent["stop"]) == (30, ["\n\n"])
    assert upstream.requests[1].body["max_tokens"] == 16          # OpenAI's default for this endpoint
    assert logged(app) == [("completions", 200), ("completions", 200)]


@pytest.mark.parametrize("body, param", [
    ({"model": "m1"}, "prompt"),
    ({"model": "m1", "prompt": [[1, 2, 3]]}, "prompt"),
    ({"model": "m1", "prompt": ["a", "b"]}, "prompt"),
    ({"model": "m1", "prompt": "x", "echo": True}, "echo"),
    ({"model": "m1", "prompt": "x", "logprobs": 2}, "logprobs"),
    ({"model": "m1", "prompt": "x", "suffix": "}"}, "suffix"),
    ({"model": "m1", "prompt": "x", "best_of": 3}, "best_of"),
    ({"model": "m1", "prompt": "x", "max_tokens": 0}, "max_tokens"),
])
def test_what_chat_cannot_do_is_refused_by_name(gateway, upstream, body, param):
    app, headers = gateway
    response = app.test_client().post("/v1/completions", headers=headers, json=body)
    assert response.status_code == 400 and response.get_json()["error"]["param"] == param
    assert upstream.requests == [] and logged(app) == []


def test_a_broken_stream_ends_with_an_error_and_no_done(gateway, upstream):
    app, headers = gateway
    upstream.script(Fault.cut(after=2), model="m1", times=1)
    events = sse_data(app.test_client().post("/v1/completions", headers=headers,
                                             json={"model": "m1", "prompt": "x", "stream": True}).get_data())
    assert events[0]["object"] == "text_completion" and events[0]["choices"][0]["text"] is not None
    assert "[DONE]" not in events and events[-1]["error"]["code"] == "stream_interrupted"
    assert logged(app) == [("completions", 502)]
