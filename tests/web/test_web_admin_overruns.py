"""/admin/upstreams lists upstream overruns: answers whose usage went past their hold."""
import pytest
from helpers import gateway_config
from web_client import web  # noqa: F401  (web is a fixture)

from conftest import make_key, make_user
from extensions import db
from models import credit


@pytest.fixture
def app(make_app, upstream):
    return make_app(gateway_config(upstream, {"m1": {"provider": "openai", "output_per_mtok": 1000.0}}, keys=("k",)))


def test_an_upstream_overrun_is_listed_for_the_admin(app, web, upstream):
    """The user pays the hold; the admin sees what the upstream produced beyond it, uncharged."""
    admin = web("root")
    user_id = make_user(app, "carol")
    with app.app_context():
        credit.grant(user_id, 10_000_000)
        db.session.commit()
    upstream.usage = (0, 50_000)                  # max_tokens is 10: the upstream ignored it
    body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
    response = app.test_client().post("/v1/chat/completions", json=body,
                                      headers={"Authorization": f"Bearer {make_key(app, user_id)}"})
    assert response.status_code == 200 and response.headers["X-Credits-Charged"] == "0.01"
    page = admin.get("/admin/upstreams").get_data(as_text=True)
    assert "<td>0 / 50000</td><td>49.99</td>" in " ".join(page.split()).replace("> <", "><")
