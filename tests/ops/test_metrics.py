"""GET /metrics (SPEC 2.6): the series after served and failed requests, who may read them, and
the sums under gunicorn with two workers, whichever worker answers the scrape.

In-process the series are this test process's (prometheus_client's single-process mode), shared by
every test: each test here uses model ids of its own, so its exact counts are its own.
"""
import re

import pytest
import requests

from conftest import make_key, make_user, served_gateway
from extensions import db
from fake_upstream import Fault
from gateway import metrics, pricing
from helpers import gateway_config, served_toml
from models import credit
from servers import gunicorn_server, worker_pids

CHAT = "/v1/chat/completions"
TOKEN = "metrics-token-for-tests-only"
SCRAPER = {"Authorization": f"Bearer {TOKEN}"}


def chat(client, headers, model):
    return client.post(CHAT, headers=headers, json={"model": model, "messages": [{"role": "user", "content": "hi"}]})


@pytest.fixture
def gateway(make_app, upstream):
    """A gateway with models `metrics-ok`, `metrics-stream` and `metrics-down` (whose upstream answers 503)."""
    app = make_app(gateway_config(upstream, ["metrics-ok", "metrics-stream", "metrics-down"]), METRICS_TOKEN=TOKEN)
    upstream.script(Fault.status(503), model="metrics-down")
    return app


def test_series_after_a_served_and_a_failed_request(gateway):
    user_id = make_user(gateway, "carol-the-user")
    key = make_key(gateway, user_id)
    with gateway.app_context():
        credit.grant(user_id, 5 * pricing.MICRO_PER_USD)
        db.session.commit()
    client = gateway.test_client()
    assert chat(client, {"Authorization": f"Bearer {key}"}, "metrics-ok").status_code == 200
    failed = chat(client, {"Authorization": f"Bearer {key}"}, "metrics-down").status_code
    assert failed >= 500

    response = client.get("/metrics", headers=SCRAPER)
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    assert 'llm_requests_total{model="metrics-ok",status="200"} 1.0' in text
    assert f'llm_requests_total{{model="metrics-down",status="{failed}"}} 1.0' in text
    assert 'llm_requests_duration_seconds_count{model="metrics-ok"} 1.0' in text
    assert 'llm_requests_duration_seconds_bucket{le="+Inf",model="metrics-down"} 1.0' in text
    assert 'llm_upstream_duration_seconds_count{model="metrics-ok"} 1.0' in text
    assert "# TYPE llm_gateway_overhead_seconds histogram" in text
    assert f'user_balance{{user="{user_id}"}} 5.0' in text
    assert key not in text and key[:12] not in text and "carol-the-user" not in text


def test_an_unknown_model_is_counted_without_its_name(gateway):
    """A made-up model id is counted as "unknown": clients cannot add a series per name they invent."""
    client = gateway.test_client()
    headers = {"Authorization": f"Bearer {make_key(gateway, make_user(gateway))}"}
    before = _value(client.get("/metrics", headers=SCRAPER).get_data(as_text=True), "unknown", "404")
    assert chat(client, headers, "metrics-made-up-name").status_code == 404
    text = client.get("/metrics", headers=SCRAPER).get_data(as_text=True)
    assert "metrics-made-up-name" not in text
    assert _value(text, "unknown", "404") == before + 1


def test_overhead_is_the_request_less_its_upstream_time(gateway, upstream):
    """A slow upstream's second shows in the upstream histogram, not in the gateway's overhead."""
    client = gateway.test_client()
    headers = {"Authorization": f"Bearer {make_key(gateway, make_user(gateway))}"}
    overhead_before = _sample(client.get("/metrics", headers=SCRAPER).get_data(as_text=True),
                              "llm_gateway_overhead_seconds_sum")
    upstream.script(Fault.slow(0.5), model="metrics-ok", times=1)
    assert chat(client, headers, "metrics-ok").status_code == 200
    text = client.get("/metrics", headers=SCRAPER).get_data(as_text=True)
    assert _sample(text, 'llm_upstream_duration_seconds_sum{model="metrics-ok"}') >= 0.5
    assert _sample(text, "llm_gateway_overhead_seconds_sum") - overhead_before < 0.25


def test_a_streams_relay_is_upstream_time(gateway, upstream):
    """After the first chunk, a paced stream's time is still the upstream's, not the gateway's."""
    client = gateway.test_client()
    headers = {"Authorization": f"Bearer {make_key(gateway, make_user(gateway))}"}
    overhead_before = _sample(client.get("/metrics", headers=SCRAPER).get_data(as_text=True),
                              "llm_gateway_overhead_seconds_sum")
    upstream.script(Fault.paced(0.1), model="metrics-stream", times=1)
    streamed = client.post(CHAT, headers=headers, json={"model": "metrics-stream", "stream": True,
                                                        "messages": [{"role": "user", "content": "hi"}]})
    assert b"[DONE]" in streamed.get_data()
    text = client.get("/metrics", headers=SCRAPER).get_data(as_text=True)
    assert 'llm_requests_total{model="metrics-stream",status="200"} 1.0' in text
    assert _sample(text, 'llm_upstream_duration_seconds_sum{model="metrics-stream"}') >= 0.3
    assert _sample(text, "llm_gateway_overhead_seconds_sum") - overhead_before < 0.25


def test_rate_limited_requests_are_counted_by_type():
    before = _sample(metrics.exposition().decode(), 'rate_limit_requests_total{type="metrics-test"}', default=0.0)
    metrics.record_rate_limited("metrics-test")
    assert _sample(metrics.exposition().decode(), 'rate_limit_requests_total{type="metrics-test"}') == before + 1


def test_needs_the_token_or_an_admins_key(gateway):
    client = gateway.test_client()
    admin = make_key(gateway, make_user(gateway, "root", role="admin"))
    user = make_key(gateway, make_user(gateway, "dave"))

    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert set(missing.get_json()) == {"detail", "code", "error_type"}
    assert client.get("/metrics", headers={"Authorization": "Bearer not-the-token"}).status_code == 401
    refused = client.get("/metrics", headers={"Authorization": f"Bearer {user}"})
    assert refused.status_code == 403
    assert refused.get_json()["error_type"] == "admin_required"
    assert client.get("/metrics", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
    assert client.get("/metrics", headers=SCRAPER).status_code == 200


def test_without_a_configured_token_only_an_admins_key_reads(make_app, upstream):
    """An unset METRICS_TOKEN is no token: an empty bearer does not match it."""
    client = make_app(gateway_config(upstream, ["m1"])).test_client()
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401


def test_sums_over_gunicorn_workers(tmp_path, upstream):
    """20 requests on fresh connections, spread over 2 workers: every scrape, whichever worker
    answers it, counts exactly 20. The operator's PROMETHEUS_MULTIPROC_DIR is emptied at start."""
    settings = """
[limits]
user_per_minute = 0
global_per_hour = 0
ip_per_minute = 0
"""
    models = """
[models.counted]
provider = "openai"
"""
    app, env = served_gateway(tmp_path, served_toml(upstream, settings, models=models))
    headers = {"Authorization": f"Bearer {make_key(app, make_user(app))}"}
    with app.app_context():
        db.engine.dispose()
    series = tmp_path / "metrics"
    series.mkdir()
    (series / "counter_1.db").write_bytes(b"a last run's series")
    env = {**env, "METRICS_TOKEN": TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(series)}
    with gunicorn_server(env, workers=2) as base:
        workers = worker_pids(base)
        for _ in range(20):
            with requests.Session() as fresh:
                response = fresh.post(base + CHAT, headers=headers, timeout=10,
                                      json={"model": "counted", "messages": [{"role": "user", "content": "hi"}]})
            assert response.status_code == 200
        assert {f"counter_{pid}.db" for pid in workers} <= {p.name for p in series.iterdir()}   # both counted some
        for _ in range(6):
            with requests.Session() as fresh:
                text = fresh.get(base + "/metrics", headers=SCRAPER, timeout=10).text
            assert _value(text, "counted", "200") == 20
            assert 'llm_requests_duration_seconds_count{model="counted"} 20.0' in text


def _value(text, model, status):
    return _sample(text, f'llm_requests_total{{model="{model}",status="{status}"}}', default=0.0)


def _sample(text, series, default=None):
    """The value of one series line in Prometheus text (`default` when absent)."""
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    if match is None:
        assert default is not None, f"{series} not in the metrics"
        return default
    return float(match.group(1))
