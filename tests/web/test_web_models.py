"""/models: prices, group, fallback order and breaker status, with the htmx filter partial."""
import pytest
from helpers import gateway_config
from web_client import web  # noqa: F401  (web is a fixture)


@pytest.fixture
def app(make_app, upstream):
    models = {"m1": {"provider": "openai", "input_per_mtok": 2.5, "output_per_mtok": 10.0},
              "m2": {"provider": "openai", "per_request": 0.002}, "solo": {"provider": "openai"},
              "emb": {"provider": "openai", "kind": "embedding"}}
    return make_app(gateway_config(upstream, models, groups={"main": ["m1", "m2"]},
                                   routing={"cross_group_fallback": False}))


def test_catalog_lists_prices_groups_and_fallback_order(app, web):
    page = web("alice").get("/models").get_data(as_text=True)
    assert page.count("<th scope=\"row\">") == 4
    m1 = page[page.index("<code>m1</code>"):page.index("<code>m2</code>")]
    assert "<td>main</td>" in m1 and "<td>m2</td>" in m1 and "<td class=\"num\">2.50</td>" in m1
    assert "<td class=\"num\">10.00</td>" in m1
    m2 = page[page.index("<code>m2</code>"):page.index("<code>solo</code>")]
    assert "<td class=\"num\">0.002</td>" in m2 and "<td>m1</td>" in m2            # the money format, exact
    assert 'hx-trigger="input changed delay:300ms' in page and 'hx-target="#model-rows"' in page


def test_filter_returns_only_the_rows_partial(app, web):
    alice = web("alice")
    partial = alice.get("/models?q=EMB", headers={"HX-Request": "true", "HX-Target": "model-rows"})
    html = partial.get_data(as_text=True)
    assert html.lstrip().startswith('<tbody id="model-rows">') and "<html" not in html
    assert "<code>emb</code>" in html and "<code>m1</code>" not in html
    empty = alice.get("/models?q=zzz", headers={"HX-Request": "true", "HX-Target": "model-rows"})
    assert "No model matches “zzz”" in empty.get_data(as_text=True)
    assert "<code>m1</code>" in alice.get("/models?q=main").get_data(as_text=True)     # full page, filtered


def test_status_shows_an_open_circuit(app, web):
    breakers = app.extensions["gateway"].router.breakers
    for _ in range(breakers.threshold):
        breakers.failure("openai/m2")
    html = web("alice").get("/models?q=m2").get_data(as_text=True)
    assert "circuit open" in html
    assert "available" not in html[html.index("<code>m2</code>"):]
