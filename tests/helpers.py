"""Shared test helpers: gateway configurations pointing at fake upstreams, live servers, SSE parsing."""
import json
import threading
from contextlib import contextmanager

from werkzeug.serving import make_server

FAST_RETRY = {"max_attempts": 3, "base_delay": 0.05, "max_delay": 0.2, "exponential_base": 2.0, "jitter": False}
# Rate limits off unless a test turns one on: the SPEC defaults (60 a minute per user, 1000 an hour
# in all) would refuse the busier tests; tests/api/test_rate_limits.py tests the limits themselves.
NO_LIMITS = {"user_per_minute": 0, "global_per_hour": 0, "ip_per_minute": 0}


def gateway_config(upstream, models, groups=None, keys=("key-a", "key-b"), family="openai", **sections):
    """A TOML-shaped mapping: one provider per family (named after it) on the fake upstream.

    `models` is a list of ids served by `family`, or a mapping id -> model table.
    """
    if isinstance(models, list):
        models = {m: {"provider": family} for m in models}
    base = {"openai": upstream.url + "/v1", "anthropic": upstream.url, "gemini": upstream.url,
            "gigachat": upstream.url + "/v1"}
    used = {spec["provider"] for spec in models.values()} - {"demo"}
    config = {
        "routing": {"request_timeout_s": 10.0, "ttft_timeout_s": 2.0, "connect_timeout_s": 1.0},
        "retry": dict(FAST_RETRY),
        "circuit_breaker": {"failure_threshold": 50, "recovery_timeout": 60.0},
        "demo": {"enabled": False},
        "providers": {f: {"type": f, "base_url": base[f], "api_keys": list(keys)} for f in used},
        "models": models,
        "groups": groups or {},
        "limits": dict(NO_LIMITS),
    }
    if "gigachat" in used:
        config["providers"]["gigachat"]["auth_url"] = upstream.url + "/api/v2/oauth"
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    return config


def sse_data(raw):
    """The `data:` payloads of an OpenAI SSE body, decoded (the [DONE] marker kept as a string)."""
    events = []
    for block in raw.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                payload = line[6:]
                events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def streamed_text(events):
    return "".join((c["choices"][0]["delta"].get("content") or "") for c in events
                   if isinstance(c, dict) and c.get("choices"))


@contextmanager
def live_server(app):
    """Serve the app on a real 127.0.0.1 port (threaded werkzeug) for SDK and disconnect tests."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def served_toml(upstream, settings="", models='[models.m1]\nprovider = "openai"\n', keys=("key-a",)):
    """The configuration file of a gateway a test starts under gunicorn (conftest's `served_gateway`):
    no demo, one OpenAI-compatible provider on `upstream` with `keys`, then `models`; `settings` are
    the other TOML tables ([routing], [retry], [limits]...)."""
    key_list = ", ".join(f'"{key}"' for key in keys)
    return (f'[demo]\nenabled = false\n{settings}[providers.openai]\ntype = "openai"\n'
            f'base_url = "{upstream.url}/v1"\napi_keys = [{key_list}]\n{models}')
