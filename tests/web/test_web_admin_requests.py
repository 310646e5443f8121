"""/admin/requests: the request log for administrators, filtered, keyset-paged, with each request's attempts."""
import re

import pytest
from fake_upstream import Fault
from helpers import gateway_config
from web_client import web  # noqa: F401  (web is a fixture)

from blueprints.web.admin import requests as requests_page
from conftest import make_key
from extensions import db
from models import RequestLog, User


@pytest.fixture
def app(make_app, upstream):
    return make_app(gateway_config(upstream, ["m1", "m2"], keys=("secret-key-a", "secret-key-b"),
                                   groups={"g": ["m1", "m2"]}, retry={"max_attempts": 1}))


def user_id(app, username):
    with app.app_context():
        return db.session.scalar(db.select(User.id).where(User.username == username))


def ask(app, key, model="m1"):
    return app.test_client().post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                  json={"model": model, "messages": [{"role": "user", "content": "hi"}]})


def request_ids(html):
    return re.findall(r'href="/admin/requests/(\d+)"', html)


def test_admin_pages_are_403_for_users(app, web):
    web("root")
    bob = web("bob")
    assert bob.get("/admin/requests").status_code == 403
    assert bob.get("/admin/requests/1").status_code == 403
    assert bob.get("/admin/users").status_code == 403


def test_filters_narrow_the_rows_and_htmx_gets_only_the_table(app, web, upstream):
    """By user, key, model and status; an htmx request from the filter form gets the table alone."""
    root = web("root")
    web("carol")
    carol_key = make_key(app, user_id(app, "carol"), name="ci")
    root_key = make_key(app, user_id(app, "root"), name="ops")
    assert ask(app, carol_key).status_code == 200
    assert ask(app, root_key, "m2").status_code == 200
    upstream.script(Fault.status(400, "bad request"), times=1)
    assert ask(app, carol_key, "m2").status_code == 400

    everything = root.get("/admin/requests").get_data(as_text=True)
    assert len(request_ids(everything)) == 3 and 'id="request-rows"' in everything and "<form" in everything
    by_user = root.get("/admin/requests?user=carol").get_data(as_text=True)
    assert len(request_ids(by_user)) == 2 and ">ops <" not in by_user
    assert len(request_ids(root.get("/admin/requests?model=m2").get_data(as_text=True))) == 1    # the one that answered
    failed = root.get("/admin/requests?user=carol&status=400",
                      headers={"HX-Request": "true", "HX-Target": "request-rows"})
    html = failed.get_data(as_text=True)
    assert len(request_ids(html)) == 1 and "<form" not in html and html.lstrip().startswith('<div id="request-rows">')
    with app.app_context():
        ci_key = db.session.scalar(db.select(RequestLog.api_key_id).where(RequestLog.model == "m1"))
    by_key = root.get(f"/admin/requests?key={ci_key}").get_data(as_text=True)
    assert len(request_ids(by_key)) == 2 and ">ops <" not in by_key


def test_bad_filters_say_what_is_wrong_and_show_nothing(app, web):
    root = web("root")
    assert "No user is named “nobody”" in root.get("/admin/requests?user=nobody").get_data(as_text=True)
    assert "Status must be a whole number" in root.get("/admin/requests?status=5xx").get_data(as_text=True)
    assert "From must be a date" in root.get("/admin/requests?since=yesterday").get_data(as_text=True)


def test_pages_are_keyset_paged_newest_first(app, web, monkeypatch):
    """Five rows, two a page: the pages hold 5-4, 3-2, 1, each reached through the previous one's Older link."""
    root = web("root")
    key = make_key(app, user_id(app, "root"))
    for _ in range(5):
        assert ask(app, key).status_code == 200
    monkeypatch.setattr(requests_page, "PAGE_SIZE", 2)
    with app.app_context():
        ids = [str(i) for i in db.session.scalars(db.select(RequestLog.id).order_by(RequestLog.id.desc()))]
    seen, url = [], "/admin/requests?model=m1"
    while url:
        html = root.get(url).get_data(as_text=True)
        seen.append(request_ids(html))
        older = re.search(r'<a href="([^"]+)" hx-get="[^"]+" hx-target="#request-rows"', html)
        url = older and older.group(1).replace("&amp;", "&")
    assert seen == [ids[0:2], ids[2:4], ids[4:5]]
    assert "model=m1" in root.get("/admin/requests?model=m1").get_data(as_text=True).split("Older")[0]


def test_the_detail_lists_every_attempt_by_key_label_never_the_key(app, web, upstream):
    """m1 fails with a 503 and m2 answers: both attempts, their providers and key labels, the usage and the cost."""
    root = web("root")
    key = make_key(app, user_id(app, "root"), name="laptop")
    upstream.script(Fault.status(503, "overloaded"), model="m1")
    assert ask(app, key).status_code == 200
    with app.app_context():
        log_id = db.session.scalar(db.select(RequestLog.id))
    html = " ".join(root.get(f"/admin/requests/{log_id}").get_data(as_text=True).split())
    assert "<td>m1</td><td>openai</td> <td><code>openai#1</code></td>" in html
    assert "<td>m2</td><td>openai</td>" in html and "503" in html
    assert "laptop" in html and "Answered by</dt><dd>m2 via openai" in html
    assert "secret-key-a" not in html and "secret-key-b" not in html
    assert root.get("/admin/requests/999999").status_code == 404


def test_an_empty_log_says_where_rows_come_from(app, web):
    assert "No requests yet" in web("root").get("/admin/requests").get_data(as_text=True)
