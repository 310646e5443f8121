"""The hold is a true upper bound also for what travels only in a request's native form: a thinking
block in history reaches an Anthropic upstream (which counts it) though the OpenAI form drops it."""
from gateway.anthropic_api import request_from_anthropic
from gateway.tokens import prompt_bound


def test_native_only_content_is_inside_the_prompt_bound():
    thinking = "ponder " * 20_000
    body = request_from_anthropic({"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": thinking, "signature": "s"},
                                          {"type": "text", "text": "ok"}]},
        {"role": "user", "content": "go on"}]})
    assert "ponder" not in str(body["messages"])           # the OpenAI form has no place for it
    assert prompt_bound(body) >= len(thinking.encode())
