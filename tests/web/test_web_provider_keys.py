"""The /provider-keys page and /admin/activity: keys shown only as hints, owner-scoped, SSRF-checked,
tested for real against the fake upstream, and a history that shows what failover did."""
import re
import time

import pytest
import sqlalchemy as sa
from web_client import WebUser, web  # noqa: F401  (web is a fixture)

from conftest import make_key
from extensions import db
from fake_upstream import Fault
from helpers import gateway_config
from models import ActivityLog, User, UserProviderKey

PAGE = "/provider-keys"
HELLO = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def app(make_app, upstream):
    """One OpenAI-compatible provider on the fake upstream, with an operator key, and no retries."""
    return make_app(gateway_config(upstream, ["m1"], keys=("operator-key",), retry={"max_attempts": 1}))


def add(user, secret, name, provider="openai", base_url="", htmx=True):
    """Add a key through the page's form; returns the response."""
    return user.post(PAGE, data={"provider_name": provider, "name": name, "api_key": secret, "base_url": base_url},
                     htmx=htmx)


def key_id(app, name):
    """The `pk_…` id of the key called `name`."""
    with app.app_context():
        return db.session.scalar(sa.select(UserProviderKey).where(UserProviderKey.name == name)).public_id


def actions(app, username):
    """The user's activity rows, oldest first, as (action, description)."""
    with app.app_context():
        user_id = db.session.scalar(sa.select(User.id).where(User.username == username))
        return [(r.action, r.description) for r in db.session.scalars(
            sa.select(ActivityLog).where(ActivityLog.user_id == user_id).order_by(ActivityLog.id))]


def test_added_key_is_shown_only_as_its_hint(app, web):
    """Add → the list shows the provider group, the name and `…last4`; the key itself is in no page, ever."""
    alice = web("alice")
    assert "You have no provider keys yet" in alice.get(PAGE).get_data(as_text=True)
    secret = "sk-page-secret-value-9f3e"
    response = add(alice, secret, "Personal")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "provider-keys-changed"
    assert "Key “Personal” added for openai." in html and "…9f3e" in html and 'hx-swap-oob="true"' in html
    assert secret not in html
    for path in (PAGE, PAGE + "/history", "/keys", "/models", "/chat"):
        assert secret not in alice.get(path).get_data(as_text=True), path
    page = alice.get(PAGE).get_data(as_text=True)
    assert "…9f3e" in page and "Personal" in page and "<h2 id=\"pkey-group-1\">openai</h2>" in page
    assert "You have no provider keys yet" not in page and "Added key &#39;Personal&#39; for openai" in page
    with app.app_context():
        row = db.session.scalar(sa.select(UserProviderKey))
        assert secret not in row.ciphertext and app.extensions["vault"].decrypt(row.ciphertext) == secret
    assert actions(app, "alice") == [("ADD", "Added key 'Personal' for openai")]
    plain = add(alice, "sk-second-plain-post-1111", "No JS", htmx=False)      # a plain form post redirects
    assert plain.status_code == 302 and plain.location.endswith(PAGE)


def test_form_errors_keep_the_form_but_never_the_key(app, web):
    """Unknown provider, missing key, over-long name: 422 with a message, nothing stored, the key not echoed."""
    alice = web("alice")
    cases = [({"provider_name": "nope"}, "must be one of: openai"),
             ({"api_key": "  "}, "&#39;api_key&#39; is required"), ({"name": "x" * 101}, "1 to 100 characters")]
    for change, message in cases:
        data = {"provider_name": "openai", "name": "Mine", "api_key": "sk-never-echoed-4242", **change}
        response = alice.post(PAGE, data=data)
        html = response.get_data(as_text=True)
        assert response.status_code == 422 and message in html, change
        assert "sk-never-echoed-4242" not in html and 'id="add-provider-key"' in html
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(UserProviderKey)) == 0


def test_unsafe_base_url_is_refused_and_nothing_is_stored(app, web):
    """Base URLs pass the same SSRF guard as the API: loopback, metadata, non-http are refused with the reason."""
    alice = web("alice")
    cases = [("http://127.0.0.1:8080/v1", "private, loopback, link-local or reserved address"),
             ("http://169.254.169.254/latest", "private, loopback, link-local or reserved address"),
             ("file:///etc/passwd", "Only http:// and https:// URLs are allowed.")]
    for url, reason in cases:
        response = add(alice, "sk-ssrf-attempt-0001", "Inward", base_url=url)
        html = response.get_data(as_text=True)
        assert response.status_code == 422 and "&#39;base_url&#39; refused" in html and reason in html, url
        assert "sk-ssrf-attempt-0001" not in html
    plain = add(alice, "sk-ssrf-attempt-0001", "Inward", base_url=cases[0][0], htmx=False)
    assert plain.status_code == 422 and "refused" in plain.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(UserProviderKey)) == 0
    assert actions(app, "alice") == []


def test_select_switches_the_selection_and_logs_it(app, web):
    """Selecting the second key unselects the first; SELECT/UNSELECT rows appear, and the list and history say so."""
    alice = web("alice")
    add(alice, "sk-first-key-aaaa", "First")
    add(alice, "sk-second-key-bbbb", "Second")
    first, second = key_id(app, "First"), key_id(app, "Second")
    response = alice.post(f"{PAGE}/{first}/select", data={"selected": "1"})
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "provider-keys-changed"
    response = alice.post(f"{PAGE}/{second}/select", data={"selected": "1"})
    html = response.get_data(as_text=True)
    assert 'id="provider-key-list"' in html and html.count("“Second” is now the selected openai key.") == 1
    with app.app_context():
        selected = {k.name: k.is_selected for k in db.session.scalars(sa.select(UserProviderKey))}
    assert selected == {"First": False, "Second": True}
    assert [a for a, _ in actions(app, "alice")] == ["ADD", "ADD", "SELECT", "UNSELECT", "SELECT"]
    assert ("UNSELECT", "Key 'First' unselected: 'Second' was selected") in actions(app, "alice")
    history = alice.get(PAGE + "/history", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert history.startswith('<section id="provider-key-history"') and "Key &#39;Second&#39; selected" in history
    alice.post(f"{PAGE}/{second}/select", data={"selected": "0"})
    assert actions(app, "alice")[-1] == ("UNSELECT", "Key 'Second' unselected")


def test_rename_and_delete(app, web):
    """Rename swaps the card; delete (behind hx-confirm) removes the key and logs DELETE."""
    alice = web("alice")
    add(alice, "sk-rename-me-cccc", "Old name")
    key = key_id(app, "Old name")
    renamed = alice.post(f"{PAGE}/{key}", data={"name": "New name"})
    assert renamed.status_code == 200 and f'id="pkey-{key}"' in renamed.get_data(as_text=True)
    assert "New name" in renamed.get_data(as_text=True)
    assert alice.post(f"{PAGE}/{key}", data={"name": ""}).status_code == 422
    assert "hx-confirm=\"Delete the openai key “New name”?" in alice.get(PAGE).get_data(as_text=True)
    deleted = alice.post(f"{PAGE}/{key}/delete")
    assert deleted.status_code == 200 and "Key “New name” deleted." in deleted.get_data(as_text=True)
    assert "You have no provider keys yet" in deleted.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(UserProviderKey)) is None
    assert actions(app, "alice")[-1] == ("DELETE", "Deleted key 'New name'")


def test_another_users_key_is_not_found(app, web):
    """Bob gets 404 for every action on Alice's key id, and his page does not list it."""
    alice, bob = web("alice"), web("bob")
    add(alice, "sk-alices-own-key-dddd", "Alice's")
    key = key_id(app, "Alice's")
    for path in (f"{PAGE}/{key}", f"{PAGE}/{key}/select", f"{PAGE}/{key}/test", f"{PAGE}/{key}/delete"):
        assert bob.post(path, data={"name": "stolen", "selected": "1"}).status_code == 404, path
    for path in (f"{PAGE}/pk_999999", f"{PAGE}/nonsense/select", f"{PAGE}/pk_{'9' * 30}/delete", f"{PAGE}/pk_²/test"):
        assert bob.post(path).status_code == 404, path
    assert "Alice&#39;s" not in bob.get(PAGE).get_data(as_text=True)
    with app.app_context():
        row = db.session.scalar(sa.select(UserProviderKey))
        assert (row.name, row.is_selected) == ("Alice's", False)
    assert [a for a, _ in actions(app, "bob")] == []


def test_forms_need_the_csrf_token_and_a_login(app, web):
    alice = web("alice")
    add(alice, "sk-csrf-check-eeee", "Mine")
    key = key_id(app, "Mine")
    assert alice.client.post(f"{PAGE}/{key}/delete").status_code == 400          # no token
    assert alice.client.post(PAGE, data={"provider_name": "openai", "api_key": "x"}).status_code == 400
    anonymous = app.test_client()
    assert anonymous.get(PAGE).status_code == 302 and anonymous.get(PAGE + "/history").status_code == 302


def test_test_button_reports_ok_or_the_error_class_never_the_upstream_text(app, web, upstream):
    """Test makes one 1-token call with that key: OK against the fake upstream, 'auth, HTTP 401' when it refuses."""
    alice = web("alice")
    secret = "sk-tested-key-ffff"
    add(alice, secret, "Tested")
    key = key_id(app, "Tested")
    ok = alice.post(f"{PAGE}/{key}/test")
    html = ok.get_data(as_text=True)
    assert ok.status_code == 200 and "OK: m1 answered in" in html and f'id="pkey-{key}"' in html
    assert [(r.key, r.body["max_tokens"]) for r in upstream.requests] == [(secret, 1)]
    upstream.script(Fault.status(401, f"Incorrect API key provided: {secret}"), key=secret)
    refused = alice.post(f"{PAGE}/{key}/test").get_data(as_text=True)
    assert "Failed (auth, HTTP 401): the provider rejected this key" in refused
    assert "Incorrect API key" not in refused and secret not in refused
    upstream.reset()
    upstream.script(Fault.status(429, "slow down", retry_after=5), key=secret)
    assert "Failed (rate_limit, HTTP 429)" in alice.post(f"{PAGE}/{key}/test").get_data(as_text=True)
    assert [r.key for r in upstream.requests] == [secret]                  # no fallback to the operator's key
    with app.app_context():
        assert db.session.scalar(sa.select(UserProviderKey)).status == "active"   # a failed test changes nothing


def test_test_button_gives_up_on_a_trickling_upstream_at_the_deadline(make_app, upstream):
    """An answer sent a byte at a time never trips a per-read timeout; the test still ends at the
    request deadline and says the provider did not answer in time."""
    app = make_app(gateway_config(upstream, ["m1"], keys=("operator-key",), retry={"max_attempts": 1},
                                  routing={"request_timeout_s": 0.6}))
    alice = WebUser(app.test_client())
    alice.register("alice")
    add(alice, "sk-trickled-key-eeee", "Slow")
    upstream.script(Fault.trickle(5))
    started = time.monotonic()
    html = alice.post(f"{PAGE}/{key_id(app, 'Slow')}/test").get_data(as_text=True)
    assert time.monotonic() - started < 2.5
    assert "Failed (timeout): the provider did not answer in time" in html


def test_passing_test_puts_an_invalid_key_back_in_rotation(app, web):
    alice = web("alice")
    add(alice, "sk-was-invalid-gggg", "Fixed")
    with app.app_context():
        row = db.session.scalar(sa.select(UserProviderKey))
        row.status, row.last_error = "invalid", "401: invalid key"
        db.session.commit()
    assert "badge-invalid" in alice.get(PAGE).get_data(as_text=True)
    html = alice.post(f"{PAGE}/{key_id(app, 'Fixed')}/test").get_data(as_text=True)
    assert "The key is back in rotation." in html and "badge-active" in html and "Last error" not in html


def test_unsafe_stored_base_url_is_not_called_by_the_test(app, web, upstream):
    """A base URL that became unsafe after it was saved is refused at test time too."""
    alice = web("alice")
    add(alice, "sk-moved-inward-hhhh", "Moved")
    with app.app_context():
        db.session.scalar(sa.select(UserProviderKey)).base_url = "http://127.0.0.1:9/v1"
        db.session.commit()
    html = alice.post(f"{PAGE}/{key_id(app, 'Moved')}/test").get_data(as_text=True)
    assert "Failed (unsafe_url)" in html and upstream.requests == []


def test_history_shows_automatic_failover(app, web, upstream):
    """The selected key answers 429 through /v1/chat/completions: the history shows UNSELECT then SELECT,
    and the failed key's card shows its cooldown and last error."""
    alice = web("alice")
    add(alice, "sk-old-selected-iiii", "Old key")
    add(alice, "sk-new-spare-jjjj", "New key")
    alice.post(f"{PAGE}/{key_id(app, 'Old key')}/select", data={"selected": "1"})
    with app.app_context():
        user_id = db.session.scalar(sa.select(User.id).where(User.username == "alice"))
    headers = {"Authorization": f"Bearer {make_key(app, user_id)}"}
    upstream.script(Fault.status(429, "rate limit exceeded", retry_after=30), key="sk-old-selected-iiii", times=1)
    assert app.test_client().post("/v1/chat/completions", json=HELLO, headers=headers).status_code == 200
    assert [r.key for r in upstream.requests] == ["sk-old-selected-iiii", "sk-new-spare-jjjj"]
    history = alice.get(PAGE + "/history").get_data(as_text=True)
    assert "Key &#39;Old key&#39; unselected after 429: rate limit exceeded" in history
    assert "Key &#39;New key&#39; selected by automatic failover from &#39;Old key&#39;" in history
    assert history.index("selected by automatic failover") < history.index("unselected after 429")   # newest first
    page = alice.get(PAGE).get_data(as_text=True)
    old_card = page[page.index(f'id="pkey-{key_id(app, "Old key")}"'):page.index(f'id="pkey-{key_id(app, "New key")}"')]
    assert "cooling down until" in old_card and "Last error: 429: rate limit exceeded" in old_card
    assert "badge-selected" not in old_card


def test_admin_activity_lists_every_user_and_filters(app, web):
    """/admin/activity: an admin sees all users' rows with their names, filters by user and action, pages;
    anyone else gets 403."""
    root, alice, bob = web("root"), web("alice"), web("bob")
    add(alice, "sk-alice-activity-kkkk", "Alice key")
    add(bob, "sk-bob-activity-llll", "Bob key")
    bob.post(f"{PAGE}/{key_id(app, 'Bob key')}/select", data={"selected": "1"})
    assert alice.get("/admin/activity").status_code == 403
    assert app.test_client().get("/admin/activity").status_code == 302
    page = root.get("/admin/activity").get_data(as_text=True)
    assert "Added key &#39;Alice key&#39; for openai" in page and "Key &#39;Bob key&#39; selected" in page
    assert page.index("Key &#39;Bob key&#39; selected") < page.index("Added key &#39;Alice key&#39;")  # newest first
    assert "<td>alice</td>" in page and "<td>bob</td>" in page
    with app.app_context():
        bob_id = db.session.scalar(sa.select(User.id).where(User.username == "bob"))
    only_bob = root.get(f"/admin/activity?user={bob_id}", headers={"HX-Request": "true", "HX-Target": "activity-rows"})
    rows = only_bob.get_data(as_text=True)
    assert rows.startswith('<div id="activity-rows">') and "<td>alice</td>" not in rows and "Bob key" in rows
    selects = root.get("/admin/activity?action=SELECT").get_data(as_text=True)
    assert "Key &#39;Bob key&#39; selected" in selects and "Added key" not in selects
    assert "No activity matches these filters" in root.get("/admin/activity?action=DELETE").get_data(as_text=True)


def test_admin_activity_pages(app, web):
    root = web("root")
    with app.app_context():
        for n in range(60):
            db.session.add(ActivityLog(user_id=1, action="ADD", provider_name="openai", key_id=n + 1,
                                       description=f"Added key 'k{n}' for openai"))
        db.session.commit()
    first = root.get("/admin/activity").get_data(as_text=True)
    assert "k59&#39;" in first and "k10&#39;" in first and "k9&#39;" not in first and "Older →" in first
    second = root.get(re.search(r'href="([^"]+page=2)"', first).group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "k9&#39;" in second and "k0&#39;" in second and "k10&#39;" not in second and "← Newer" in second
    assert "Older →" not in second


def test_after_an_add_the_form_keeps_the_chosen_provider(make_app, upstream):
    """Adding several keys for the second provider in the list must not jump back to the first one."""
    app = make_app(gateway_config(upstream, {"m1": {"provider": "openai"}, "c1": {"provider": "anthropic"}}))
    alice = WebUser(app.test_client())
    alice.register("alice")
    form = add(alice, "sk-ant-first-1111", "First", provider="openai").get_data(as_text=True)
    assert re.search(r'<option value="openai"\s+selected>', form) and not re.search(r'value="anthropic"\s+selected', form)
    form = add(alice, "sk-ant-second-2222", "Second", provider="anthropic").get_data(as_text=True)
    assert re.search(r'<option value="anthropic"\s+selected>', form) and not re.search(r'value="openai"\s+selected', form)


def test_a_refused_rename_keeps_what_was_typed(app, web):
    alice = web("alice")
    add(alice, "sk-rename-me-3333", "Before")
    key = key_id(app, "Before")
    refused = alice.post(f"{PAGE}/{key}", data={"name": "y" * 101})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and f'value="{"y" * 101}"' in html and "<details open>" in html
    with app.app_context():
        assert db.session.scalar(sa.select(UserProviderKey)).name == "Before"


def test_a_failed_test_is_still_shown_after_a_reload(app, web, upstream):
    """The test's outcome goes into the key history (a TEST row), which the page shows on every load."""
    alice = web("alice")
    secret = "sk-fails-its-test-7777"
    add(alice, secret, "Flaky")
    key = key_id(app, "Flaky")
    upstream.script(Fault.status(401, f"Incorrect API key provided: {secret}"), key=secret)
    tested = alice.post(f"{PAGE}/{key}/test")
    assert tested.headers["HX-Trigger"] == "provider-keys-changed"          # the history panel reloads itself
    page = alice.get(PAGE).get_data(as_text=True)
    assert "badge-action-test" in page and "Tested key &#39;Flaky&#39;: Failed (auth, HTTP 401)" in page
    assert secret not in page and "Incorrect API key" not in page
    assert actions(app, "alice")[-1][0] == "TEST"
    assert "Tested key &#39;Flaky&#39;" in alice.get("/admin/activity?action=TEST").get_data(as_text=True)
