"""Cache- and reasoning-aware prices (SPEC 5): cache reads and writes at their own prices, reasoning at
the output price, from every family's usage details; the request log keeps the breakdown, the answer
carries `usage.cost`, and the hold stays an upper bound when writing a cache costs more than input."""
import time

import anthropic
import openai
import pytest
import sqlalchemy as sa

from conftest import make_key, make_user
from extensions import db
from gateway import anthropic_api
from gateway import config as gateway_config_module
from gateway.tokens import prompt_bound
from helpers import gateway_config, live_server
from ledger import MICRO, charges
from models import RequestLog, credit

PRICES = {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0, "cache_read_per_mtok": 100.0,
          "cache_write_per_mtok": 1250.0}        # micro-USD per token
CACHED = [{"role": "user", "content": [{"type": "text", "text": "long context", "cache_control": {"type": "ephemeral"}}]}]


@pytest.fixture
def served(make_app, upstream):
    models = {f"{family}-x": {"provider": family, **PRICES} for family in ("anthropic", "openai", "gemini")}
    app = make_app(gateway_config(upstream, models, keys=("key-a",)))
    user_id = make_user(app)
    with app.app_context():
        credit.grant(user_id, 100 * MICRO)
        db.session.commit()
    key = make_key(app, user_id)
    with live_server(app) as base:
        yield app, user_id, base, key


def settled_charges(app, user_id, count):
    """The user's charges once `count` are booked: a stream is settled just after its last byte left."""
    deadline = time.monotonic() + 5
    while len(charges(app, user_id)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return charges(app, user_id)


def _log(app):
    with app.app_context():
        row = db.session.scalars(sa.select(RequestLog).order_by(RequestLog.id.desc())).first()
        return (row.prompt_tokens, row.cache_read_tokens, row.cache_write_tokens, row.completion_tokens,
                row.reasoning_tokens, row.cost, row.cost_parts)


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_cache_reads_and_writes_are_billed_at_their_prices(served, upstream, stream):
    """12 uncached + 100 read + 40 written input tokens and 7 output: each part at its price, through
    /v1/messages, with the Anthropic usage fields and the cost in the answer."""
    app, user_id, base, key = served
    upstream.cache = (100, 40)
    client = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
    if stream:
        with client.messages.stream(model="anthropic-x", max_tokens=50, messages=CACHED) as events:
            cost = next(e.usage.model_extra["cost"] for e in events if e.type == "message_delta")
            message = events.get_final_message()
    else:
        message = client.messages.create(model="anthropic-x", max_tokens=50, messages=CACHED)
        cost = message.usage.model_extra["cost"]
    expected = 12 * 1000 + 100 * 100 + 40 * 1250 + 7 * 2000
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens,
            message.usage.cache_creation_input_tokens) == (12, 100, 40)
    assert cost == expected / MICRO
    assert settled_charges(app, user_id, 1) == [-expected]
    assert _log(app) == (152, 100, 40, 7, 0, expected, {"input": 12_000, "cache_read": 10_000, "cache_write": 50_000,
                                                         "output": 14_000, "reasoning": 0, "request": 0})


@pytest.mark.parametrize("family", ["openai", "gemini"])
def test_cached_and_reasoning_tokens_from_openai_and_gemini(served, upstream, family):
    """OpenAI's cached_tokens / reasoning_tokens and Gemini's cachedContentTokenCount / thoughtsTokenCount
    reach the caller in OpenAI's usage details and are billed: cached input at the cache-read price,
    reasoning (part of the output) at the output price."""
    app, user_id, base, key = served
    upstream.usage, upstream.cache, upstream.reasoning_tokens = (200, 20), (150, 0), 5
    client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    usage = client.chat.completions.create(model=f"{family}-x", messages=[{"role": "user", "content": "hi"}]).usage
    output = 20 if family == "openai" else 25      # Gemini counts thoughts apart from the candidates
    expected = 50 * 1000 + 150 * 100 + output * 2000
    assert (usage.prompt_tokens, usage.completion_tokens) == (200, output)
    assert usage.prompt_tokens_details.cached_tokens == 150
    assert usage.completion_tokens_details.reasoning_tokens == 5
    assert usage.model_extra["cost"] == expected / MICRO
    assert charges(app, user_id) == [-expected]
    assert _log(app)[:6] == (200, 150, 0, output, 5, expected)
    chunks = list(client.chat.completions.create(model=f"{family}-x", messages=[{"role": "user", "content": "hi"}],
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage.model_extra["cost"] == expected / MICRO
    assert settled_charges(app, user_id, 2) == [-expected, -expected]


def test_cache_prices_default_to_the_input_price(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text('[providers.p]\ntype = "openai"\nbase_url = "http://127.0.0.1:1/v1"\n'
                    '[models.m]\nprovider = "p"\ninput_per_mtok = 3.0\noutput_per_mtok = 15.0\n')
    model = gateway_config_module.load(str(path)).models["m"]
    assert (model.cache_read_per_mtok, model.cache_write_per_mtok) == (3.0, 3.0)


def test_hold_covers_a_prompt_written_to_the_cache_at_the_dearer_price(served, upstream):
    """Writing a cache costs more than input: a balance that covers the prompt's bound at the input price
    but not at the cache-write price gets 402 before any upstream call; a little more is served."""
    app, user_id, base, key = served
    request = {"model": "anthropic-x", "max_tokens": 5, "messages": CACHED}
    bound = prompt_bound(anthropic_api.request_from_anthropic(dict(request)))
    at_write_price = bound * 1250 + 5 * 2000
    with app.app_context():
        credit.grant(user_id, -100 * MICRO + at_write_price - 1)       # more than bound × input price
        db.session.commit()
    client = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as refused:
        client.messages.create(**request)
    assert refused.value.status_code == 402 and upstream.requests == []
    with app.app_context():
        credit.grant(user_id, 1)
        db.session.commit()
    assert client.messages.create(**request).content[0].text == upstream.reply_text
