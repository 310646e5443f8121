"""A canary scan: known fake keys go through success and failure paths, then every place a key
could leak (answers, headers, logs, the request log, the activity log, key listings, the
/provider-keys page and its Test button) is searched."""
import json
import logging
import re

import sqlalchemy as sa

from conftest import make_key, make_user
from extensions import db
from fake_upstream import Fault
from helpers import gateway_config

OPERATOR, USER, HEADER = "canary-operator-7f3a9e51", "canary-user-51c2d8aa", "canary-header-9b7e44cc"
PAGE = "canary-page-3d9f0b17"                     # a user key added through the /provider-keys form
CANARIES = (OPERATOR, USER, HEADER, PAGE)


def web_session(app, username, password):
    """A logged-in browser session: its client and the headers an htmx form post sends (CSRF token)."""
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    page = client.get("/provider-keys").get_data(as_text=True)
    return client, {"X-CSRFToken": re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1),
                    "HX-Request": "true"}


def test_no_full_key_appears_anywhere(make_app, upstream, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    app = make_app(gateway_config(upstream, ["m1", "m2"], {"g": ["m1", "m2"]}, keys=(OPERATOR,),
                                  retry={"max_attempts": 1}))
    gateway_key = make_key(app, make_user(app, "alice", "correct-horse"))
    headers = {"Authorization": f"Bearer {gateway_key}"}
    client = app.test_client()
    browser, form_headers = web_session(app, "alice", "correct-horse")
    seen = []

    def call(method, url, via=client, **kw):
        response = getattr(via, method)(url, **kw)
        seen.append(response.get_data(as_text=True))
        seen.append(json.dumps(dict(response.headers)))
        return response

    call("post", "/api/v1/provider-keys", headers=headers, json={"provider_name": "openai", "api_key": USER, "name": "k"})
    call("get", "/api/v1/provider-keys", headers=headers)
    call("post", "/provider-keys", via=browser, headers=form_headers,
         data={"provider_name": "openai", "name": "from the page", "api_key": PAGE})
    page_key = re.search(r'id="pkey-(pk_\d+)"[^>]*>\s*<header[^>]*>\s*<strong[^>]*>from the page',
                         seen[-2]).group(1)
    body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}
    for secret in CANARIES:                           # each key is rejected by an upstream that echoes it back
        upstream.script(Fault.status(401, f"Incorrect API key provided: {secret}"), key=secret)
    upstream.script(Fault.status(500, f"internal error for key {OPERATOR}"), model="m2")
    call("post", "/v1/chat/completions", headers={**headers, "X-OpenAI-API-Key": HEADER}, json=body)
    call("post", "/v1/chat/completions", headers=headers, json={**body, "stream": True})
    call("post", "/v1/messages", headers=headers, json={**body, "max_tokens": 5})
    call("post", "/api/v1/chat", headers=headers, json=body)
    call("post", "/api/v1/chat/generate-text", headers=headers, json={"message": "hi"})
    call("get", "/api/v1/activity-logs", headers=headers)
    call("get", "/api/keys", headers=headers)
    call("post", f"/provider-keys/{page_key}/test", via=browser, headers=form_headers)   # the key's own 401
    assert "Failed (auth, HTTP 401)" in seen[-2]
    call("get", "/provider-keys", via=browser)
    call("get", "/provider-keys/history", via=browser)
    assert "from the page" in seen[-4] and "…0b17" in seen[-4]
    assert {r.key for r in upstream.requests} >= set(CANARIES)       # every key really was used
    with app.app_context():
        tables = [json.dumps([list(map(str, row)) for row in db.session.execute(sa.text(f"SELECT * FROM {table}"))])
                  for table in ("request_logs", "activity_logs", "api_keys", "credit_transactions", "provider_keys")]
    captured = capsys.readouterr()
    haystack = "\n".join(seen + tables + [caplog.text, captured.out, captured.err])
    assert "Incorrect API key provided" in haystack                   # the upstream messages did arrive
    for secret in CANARIES + (gateway_key,):          # the gateway key is stored hashed, shown masked
        assert secret not in haystack
