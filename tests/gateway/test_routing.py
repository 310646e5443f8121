"""Fallback, key failover, retries and circuit breakers, proven from the fake upstream's own log."""
import re
import time

import pytest

from conftest import make_key, make_user
from fake_upstream import Fault
from helpers import gateway_config

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hi"}]


def gateway_for(make_app, upstream, models, groups=None, **kw):
    app = make_app(gateway_config(upstream, models, groups, **kw))
    headers = {"Authorization": f"Bearer {make_key(app, make_user(app))}"}
    return app.test_client(), headers


def chat(client, headers, model="m1", **extra):
    return client.post(CHAT, json={"model": model, "messages": HELLO, **extra}, headers=headers)


def tried(upstream):
    return [(r.model, r.key) for r in upstream.requests]


def test_fallback_follows_group_then_other_groups(make_app, upstream):
    """Requested model → the rest of its group in order → the other groups in configured order."""
    client, headers = gateway_for(make_app, upstream, ["m1", "m2", "m3", "m4"],
                                  {"g1": ["m2", "m1"], "g2": ["m4", "m3"]}, keys=("key-a",),
                                  retry={"max_attempts": 1})
    for model in ("m1", "m2", "m4"):
        upstream.script(Fault.status(500), model=model)
    response = chat(client, headers, "m1")
    assert response.status_code == 200
    assert [m for m, _ in tried(upstream)] == ["m1", "m2", "m4", "m3"]
    assert response.get_json()["model"] == "m3"
    assert response.headers["X-Gateway-Model"] == "m3"
    assert response.headers["X-Gateway-Attempts"] == "4"


def test_cross_group_fallback_can_be_switched_off(make_app, upstream):
    """With cross_group_fallback off, only the requested model's group is tried, then 502 listing each attempt."""
    client, headers = gateway_for(make_app, upstream, ["m1", "m2", "m3"], {"g1": ["m1", "m2"], "g2": ["m3"]},
                                  keys=("key-a",), retry={"max_attempts": 1},
                                  routing={"cross_group_fallback": False})
    upstream.script(Fault.status(500))
    response = chat(client, headers, "m1")
    assert response.status_code == 502
    message = response.get_json()["error"]["message"]
    assert "m1 via openai" in message and "m2 via openai" in message
    assert [m for m, _ in tried(upstream)] == ["m1", "m2"]


def test_request_models_list_replaces_group_order(make_app, upstream):
    """A per-request `models` list gives the fallback order explicitly."""
    client, headers = gateway_for(make_app, upstream, ["m1", "m2", "m3"], {"g": ["m1", "m2", "m3"]},
                                  keys=("key-a",), retry={"max_attempts": 1})
    upstream.script(Fault.status(503), model="m1")
    response = chat(client, headers, "m1", models=["m3", "m2"])
    assert response.status_code == 200
    assert [m for m, _ in tried(upstream)] == ["m1", "m3"]


def test_401_marks_key_bad_and_next_key_serves(make_app, upstream):
    """Key A answering 401 is taken out; key B serves the same request and later ones go to B only."""
    client, headers = gateway_for(make_app, upstream, ["m1"])
    upstream.script(Fault.status(401, "Incorrect API key provided: key-a"), key="key-a")
    first = chat(client, headers)
    assert first.status_code == 200
    assert tried(upstream) == [("m1", "key-a"), ("m1", "key-b")]
    assert "key-a" not in first.get_data(as_text=True)
    chat(client, headers)
    assert tried(upstream)[2:] == [("m1", "key-b")]


def test_429_cools_key_down_for_retry_after(make_app, upstream):
    """Key A answering 429 with Retry-After is skipped until that time has passed."""
    client, headers = gateway_for(make_app, upstream, ["m1"])
    upstream.script(Fault.status(429, retry_after=1), key="key-a", times=1)
    assert chat(client, headers).status_code == 200
    assert chat(client, headers).status_code == 200
    assert tried(upstream) == [("m1", "key-a"), ("m1", "key-b"), ("m1", "key-b")]
    time.sleep(1.1)
    chat(client, headers)
    assert tried(upstream)[-1] == ("m1", "key-a")


def test_transient_errors_retry_up_to_max_attempts_with_backoff(make_app, upstream):
    """A key that keeps answering 500 is tried max_attempts times, waiting longer each time, then 502."""
    client, headers = gateway_for(make_app, upstream, ["m1"], keys=("key-a",),
                                  retry={"max_attempts": 3, "base_delay": 0.2, "max_delay": 5.0, "jitter": False})
    upstream.script(Fault.status(500))
    response = chat(client, headers)
    assert response.status_code == 502
    assert len(upstream.requests) == 3
    arrivals = [r.received_at for r in upstream.requests]
    assert arrivals[1] - arrivals[0] >= 0.2          # base_delay
    assert arrivals[2] - arrivals[1] >= 0.4          # base_delay × exponential_base


def test_retry_succeeds_when_a_later_attempt_works(make_app, upstream):
    """Two 503s then a success: the client sees one success and three attempts."""
    client, headers = gateway_for(make_app, upstream, ["m1"], keys=("key-a",))
    upstream.script(Fault.status(503), times=2)
    response = chat(client, headers)
    assert response.status_code == 200
    assert response.headers["X-Gateway-Attempts"] == "3"
    assert len(upstream.requests) == 3


@pytest.mark.parametrize("status", [400, 404, 413, 422])
def test_upstream_request_errors_are_tried_once_and_rewrapped(make_app, upstream, status):
    """An upstream 400/404/413/422 (the request itself is wrong) is returned at once (no retry, no
    fallback, key kept) with our own error shape."""
    client, headers = gateway_for(make_app, upstream, ["m1", "m2"], {"g": ["m1", "m2"]})
    upstream.script(Fault.status(status, "bad parameter sk-leakedsecret123"), model="m1", times=1)
    response = chat(client, headers)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["code"] == "upstream_rejected_request"
    assert "sk-leakedsecret123" not in error["message"]
    assert tried(upstream) == [("m1", "key-a")]
    assert chat(client, headers).status_code == 200
    assert tried(upstream)[-1] == ("m1", "key-a")


def test_open_circuit_is_skipped_then_half_open_after_recovery(make_app, upstream):
    """After failure_threshold failures the circuit opens (no calls); after recovery_timeout one probe goes out."""
    client, headers = gateway_for(make_app, upstream, ["m1"], keys=("key-a",), retry={"max_attempts": 1},
                                  circuit_breaker={"failure_threshold": 2, "recovery_timeout": 0.5})
    upstream.script(Fault.status(500), times=2)
    assert chat(client, headers).status_code == 502
    assert chat(client, headers).status_code == 502
    assert len(upstream.requests) == 2
    skipped = chat(client, headers)
    assert skipped.status_code == 503
    assert "circuit open" in skipped.get_json()["error"]["message"]
    assert len(upstream.requests) == 2
    time.sleep(0.6)
    assert chat(client, headers).status_code == 200
    assert len(upstream.requests) == 3
    assert chat(client, headers).status_code == 200


def test_half_open_probe_answered_429_closes_the_model_circuit(make_app, upstream):
    """A probe that reaches a live upstream which answers 429 proves it is up: the circuit closes
    instead of staying half-open (and answering 503) for good."""
    client, headers = gateway_for(make_app, upstream, ["m1"], keys=("key-a", "key-b"), retry={"max_attempts": 1},
                                  circuit_breaker={"failure_threshold": 2, "recovery_timeout": 0.3})
    upstream.script(Fault.status(500), times=2)
    assert chat(client, headers).status_code == 502
    assert chat(client, headers).status_code == 502          # the second failure opens the circuit
    assert chat(client, headers).status_code == 503
    time.sleep(0.4)
    upstream.script(Fault.status(429, retry_after=60), key="key-a", times=1)
    assert chat(client, headers).status_code == 200          # the probe's 429 moves on to key-b
    assert tried(upstream)[-2:] == [("m1", "key-a"), ("m1", "key-b")]
    assert chat(client, headers).status_code == 200
    assert tried(upstream)[-1] == ("m1", "key-b")


def test_connection_reset_falls_back(make_app, upstream):
    """A connection reset before any response falls back to the next model of the group."""
    client, headers = gateway_for(make_app, upstream, ["m1", "m2"], {"g": ["m1", "m2"]},
                                  keys=("key-a",), retry={"max_attempts": 1})
    upstream.script(Fault.reset(), model="m1")
    response = chat(client, headers)
    assert response.status_code == 200
    assert response.get_json()["model"] == "m2"
    assert [m for m, _ in tried(upstream)] == ["m1", "m2"]


def test_all_attempts_timing_out_is_504(make_app, upstream):
    """When every attempt times out the client gets 504 within the overall deadline."""
    client, headers = gateway_for(make_app, upstream, ["m1"], keys=("key-a",), retry={"max_attempts": 1},
                                  routing={"request_timeout_s": 0.5})
    upstream.script(Fault.slow(3))
    started = time.monotonic()
    response = chat(client, headers)
    assert response.status_code == 504
    assert time.monotonic() - started < 1.5


def test_a_trickled_answer_is_cut_at_the_deadline(make_app, upstream):
    """An answer that arrives a byte at a time never trips a per-read timeout; the overall
    deadline still ends the request with 504 on time."""
    client, headers = gateway_for(make_app, upstream, ["m1"], keys=("key-a",), retry={"max_attempts": 1},
                                  routing={"request_timeout_s": 0.6})
    upstream.script(Fault.trickle(5))
    started = time.monotonic()
    response = chat(client, headers)
    assert response.status_code == 504
    assert time.monotonic() - started < 2


def test_redirects_are_not_followed(make_app, upstream):
    """An upstream redirect is never followed: the Location target receives nothing."""
    from fake_upstream import FakeUpstream

    with FakeUpstream() as elsewhere:
        client, headers = gateway_for(make_app, upstream, ["m1"], keys=("key-a",), retry={"max_attempts": 1})
        upstream.script(Fault.redirect(elsewhere.url + "/v1/chat/completions"))
        response = chat(client, headers)
        assert response.status_code == 502
        assert elsewhere.requests == []


def test_invalid_json_answer_is_502(make_app, upstream):
    """An upstream answering 200 with invalid JSON gives 502, and the key stays in use."""
    client, headers = gateway_for(make_app, upstream, ["m1"], keys=("key-a",), retry={"max_attempts": 1})
    upstream.script(Fault.invalid_json(), times=1)
    assert chat(client, headers).status_code == 502
    assert chat(client, headers).status_code == 200


def test_client_headers_never_reach_the_upstream(make_app, upstream):
    """Only the provider key travels: the client's Authorization, x-api-key, Cookie and custom headers do not."""
    client, headers = gateway_for(make_app, upstream, ["m1"], keys=("key-a",))
    client.set_cookie("session", "cookie-secret")
    response = client.post(CHAT, json={"model": "m1", "messages": HELLO, "api_base": "http://evil.example"},
                           headers={**headers, "X-Custom": "custom-secret", "X-Gateway-Route": "m9"})
    assert response.status_code == 200
    record = upstream.requests[0]
    assert record.key == "key-a"
    sent = " ".join(f"{k}: {v}" for k, v in record.headers.items())
    client_key = headers["Authorization"].split()[1]
    for secret in (client_key, "cookie-secret", "custom-secret", "m9"):
        assert secret not in sent
    assert "api_base" not in record.body


def test_request_log_records_every_attempt(make_app, upstream):
    """The request log holds one row per client request with each attempt's model, key id and status."""
    from extensions import db
    from models import RequestLog

    client, headers = gateway_for(make_app, upstream, ["m1"])
    upstream.script(Fault.status(429, retry_after=30), key="key-a")
    response = chat(client, headers)
    app = client.application
    with app.app_context():
        row = db.session.scalars(db.select(RequestLog)).one()
    assert row.request_id == response.headers["X-Request-ID"]
    assert [(a["key_id"], a["status"]) for a in row.attempts] == [("openai#1", 429), ("openai#2", 200)]
    assert (row.model, row.provider, row.status) == ("m1", "openai", 200)
    assert (row.prompt_tokens, row.completion_tokens) == upstream.usage
    assert "key-a" not in str(row.attempts)


def test_request_ids_are_unique_and_ordered_by_time(make_app, upstream):
    """Request ids sort in the order the requests came (so the indexes on them grow at one edge)."""
    client, headers = gateway_for(make_app, upstream, ["m1"])
    ids = []
    for _ in range(3):
        ids.append(chat(client, headers).headers["X-Request-ID"])
        time.sleep(0.002)
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in ids)
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert abs(int(ids[0][:12], 16) / 1000 - time.time()) < 60      # its head is the time it was made, in ms
