"""/admin/upstreams: operator keys taken out by failover and open circuits, shown to admins only."""
import pytest
from fake_upstream import Fault
from helpers import gateway_config
from web_client import web  # noqa: F401  (web is a fixture)

from conftest import make_key, make_user


@pytest.fixture
def app(make_app, upstream):
    return make_app(gateway_config(upstream, ["m1"], keys=("secret-key-a", "secret-key-b"),
                                   retry={"max_attempts": 1},
                                   circuit_breaker={"failure_threshold": 1, "distinct_callers": 1}))


def test_a_key_out_of_rotation_and_an_open_circuit_are_shown_by_label(app, web, upstream):
    """After a 401 on the first key and a 5xx on the second, the admin sees why the first is out, and
    the model's open circuit (a 5xx is the model's failure, not the second key's); the keys themselves
    never appear."""
    admin = web("root")
    caller = {"Authorization": f"Bearer {make_key(app, make_user(app, 'carol'))}"}
    upstream.script(Fault.status(401, "invalid key"), key="secret-key-a")
    upstream.script(Fault.status(503), key="secret-key-b")
    body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}
    assert app.test_client().post("/v1/chat/completions", json=body, headers=caller).status_code == 503
    page = admin.get("/admin/upstreams").get_data(as_text=True)
    first = page[page.index("<code>openai#1</code>"):page.index("<code>openai#2</code>")]
    assert "out</span> 401: invalid key" in first and "back in 86" in first        # a day, shared by the workers
    second = page[page.index("<code>openai#2</code>"):]
    assert "in use" in second and "<td>closed</td>" in second
    assert "<tr><td>m1</td><td>open</td><td>1</td></tr>" in page
    assert "secret-key-a" not in page and "secret-key-b" not in page


def test_upstreams_page_is_for_admins_only(app, web):
    web("root")
    assert web("bob").get("/admin/upstreams").status_code == 403

