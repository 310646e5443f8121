"""Claude Code (`claude -p`) works through the gateway with its default model on an Anthropic upstream,
and with a model an OpenAI upstream serves; the fake upstream's log shows what Claude Code sent got there."""
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import make_key, make_user
from helpers import gateway_config, live_server

CLAUDE = Path(__file__).parents[1] / "node" / "node_modules" / ".bin" / "claude"
DEFAULT_MODEL = "claude-opus-5-5"       # what Claude Code 2.1.332 asks for when no --model is given


def claude_binary():
    """The pinned Claude Code (npm installs its native binary); the test may skip only where it is not
    installed and CI does not require it."""
    if CLAUDE.exists():
        return str(CLAUDE)
    if os.environ.get("GATEWAY_REQUIRE_NODE") == "1":
        pytest.fail("Claude Code is required here (npm ci in tests/node)")
    pytest.skip("Claude Code is not installed (npm ci in tests/node)")


@pytest.fixture
def claude(make_app, upstream, tmp_path):
    binary = claude_binary()
    upstream.call_tools = False          # answer in text: Claude Code would run any tool it is asked to
    app = make_app(gateway_config(upstream, {DEFAULT_MODEL: {"provider": "anthropic"},
                                             "gpt-x": {"provider": "openai", "upstream_name": "gpt-5"}},
                                  keys=("key-a",)))
    key = make_key(app, make_user(app))
    home = tmp_path / "home"
    home.mkdir()
    with live_server(app) as base:
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_BASE_URL": base, "ANTHROPIC_API_KEY": key,
               "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}

        def run(*args, prompt="say hi"):
            done = subprocess.run([binary, "-p", prompt, *args], env=env, cwd=home, capture_output=True,
                                  text=True, timeout=120, check=False)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
            return done.stdout
        yield run


def test_claude_code_default_model_on_an_anthropic_upstream(claude, upstream):
    """Its requests (a `system` message inside `messages`, adaptive thinking, context_management, cache
    markers, metadata, betas) reach the Anthropic upstream whole; on the next turn the thinking block
    the upstream signed comes back to it with its signature intact."""
    assert upstream.reply_text in claude()
    first = upstream.requests[0]
    assert first.model == DEFAULT_MODEL and first.body["stream"] is True
    assert "claude-code-20250219" in first.headers["anthropic-beta"]
    assert all(m["role"] in ("user", "assistant") for m in first.body["messages"])
    assert any("# Environment" in block["text"] for block in first.body["system"])     # the inline system message
    assert first.body["thinking"]["type"] == "adaptive" and "context_management" in first.body
    assert "cache_control" in json.dumps(first.body) and "user_id" in first.body["metadata"]
    assert first.body["tools"] and first.body["max_tokens"] == 128000
    assert upstream.reply_text in claude("--continue", prompt="and again")
    history = upstream.requests[1].body["messages"]
    thinking = next(block for m in history if m["role"] == "assistant" for block in m["content"]
                    if block["type"] == "thinking")
    assert thinking["signature"] == "fake-signature-0123456789"


def test_claude_code_on_an_openai_upstream(claude, upstream):
    """With --model naming an OpenAI-served model, Claude Code gets its answers from the OpenAI form:
    thinking as reasoning_effort, its metadata as `user`, no Anthropic headers; a second turn works too."""
    assert upstream.reply_text in claude("--model", "gpt-x")
    sent = upstream.requests[0]
    assert sent.family == "openai" and sent.model == "gpt-5" and sent.body["stream"] is True
    assert [m["role"] for m in sent.body["messages"]][:1] == ["system"]
    assert sent.body["reasoning_effort"] in ("low", "medium", "high") and "device_id" in sent.body["user"]
    assert "anthropic-beta" not in sent.headers and "cache_control" not in json.dumps(sent.body)
    assert all(t["type"] == "function" for t in sent.body["tools"])
    assert upstream.reply_text in claude("--model", "gpt-x", "--continue", prompt="and again")
    assert [m["role"] for m in upstream.requests[1].body["messages"]].count("assistant") == 1
