"""Node clients against a live gateway: the OpenAI Node SDK's responses.create (stream and not,
previous_response_id) and the Vercel AI SDK's default `openai(model)`, which calls /v1/responses
(generateText, streamText, generateObject with a zod schema). The scripts are tests/node/*.mjs."""
import json
import os
import pathlib
import shutil
import subprocess

import pytest
import sqlalchemy as sa

from conftest import make_key, make_user
from extensions import db
from helpers import gateway_config, live_server
from models import RequestLog

NODE_DIR = pathlib.Path(__file__).parent.parent / "node"


@pytest.fixture
def node():
    """The node binary, once the pinned packages are installed (`npm ci --prefix tests/node`).

    Skipped only where they are missing and GATEWAY_REQUIRE_NODE is unset: CI sets it, so CI
    cannot pass by skipping.
    """
    binary = shutil.which("node")
    if binary is None or not (NODE_DIR / "node_modules" / "openai").is_dir():
        if os.environ.get("GATEWAY_REQUIRE_NODE") == "1":
            pytest.fail("GATEWAY_REQUIRE_NODE=1 but node or tests/node/node_modules is missing "
                        "(apt-get install nodejs npm; npm ci --prefix tests/node)")
        pytest.skip("node or tests/node/node_modules is missing (npm ci --prefix tests/node)")
    return binary


@pytest.fixture
def served(make_app, upstream):
    app = make_app(gateway_config(upstream, ["m1"], keys=("key-a",), retry={"max_attempts": 1}))
    key = make_key(app, make_user(app))
    with live_server(app) as base:
        yield app, {"GATEWAY_BASE_URL": base + "/v1", "GATEWAY_API_KEY": key, "GATEWAY_MODEL": "m1"}


def run(node, script, env, *args):
    done = subprocess.run([node, str(NODE_DIR / script), *args], cwd=NODE_DIR, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def endpoints(app):
    with app.app_context():
        return [row for row, in db.session.execute(sa.select(RequestLog.endpoint).order_by(RequestLog.id))]


def test_openai_node_sdk_responses(node, served, upstream):
    app, env = served
    result = run(node, "openai_responses.mjs", env)
    assert result["text"] == upstream.reply_text == result["streamed"]
    assert result["usage"]["total_tokens"] == sum(upstream.usage)
    assert result["types"][0] == "response.created" and result["types"][-1] == "response.completed"
    assert result["previous"] and result["status"] == "completed"
    assert [m["role"] for m in upstream.requests[-1].body["messages"]] == ["user", "assistant", "user"]
    assert endpoints(app) == ["responses"] * 3


def test_vercel_ai_sdk_default_provider_uses_responses(node, served, upstream):
    """generateText and streamText with the default `openai(model)` get the answer through /v1/responses."""
    app, env = served
    result = run(node, "vercel_ai.mjs", env, "text")
    assert result["text"] == upstream.reply_text == result["streamed"]
    assert result["usage"]["inputTokens"] == upstream.usage[0] and result["usage"]["outputTokens"] == upstream.usage[1]
    assert endpoints(app) == ["responses", "responses"]


def test_vercel_ai_sdk_generate_object(node, served, upstream):
    """generateObject's zod schema reaches the upstream as a json_schema response format, and the
    answer (JSON the fake upstream builds from that schema: "example" for each string) is the object."""
    app, env = served
    assert run(node, "vercel_ai.mjs", env, "object") == {"object": {"city": "example"}}
    response_format = upstream.requests[0].body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"]["properties"] == {"city": {"type": "string"}}
