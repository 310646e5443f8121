"""A canary scan: known fake keys go through success and failure paths, then every place a key
could leak (answers, headers, logs, the request log, the activity log, key listings) is searched."""
import json
import logging

import sqlalchemy as sa

from conftest import make_key, make_user
from extensions import db
from fake_upstream import Fault
from helpers import gateway_config

OPERATOR, USER, HEADER = "canary-operator-7f3a9e51", "canary-user-51c2d8aa", "canary-header-9b7e44cc"
CANARIES = (OPERATOR, USER, HEADER)


def test_no_full_key_appears_anywhere(make_app, upstream, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    app = make_app(gateway_config(upstream, ["m1", "m2"], {"g": ["m1", "m2"]}, keys=(OPERATOR,),
                                  retry={"max_attempts": 1}))
    gateway_key = make_key(app, make_user(app))
    headers = {"Authorization": f"Bearer {gateway_key}"}
    client = app.test_client()
    seen = []

    def call(method, url, **kw):
        response = getattr(client, method)(url, **kw)
        seen.append(response.get_data(as_text=True))
        seen.append(json.dumps(dict(response.headers)))
        return response

    call("post", "/api/v1/provider-keys", headers=headers, json={"provider_name": "openai", "api_key": USER, "name": "k"})
    call("get", "/api/v1/provider-keys", headers=headers)
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
    assert {r.key for r in upstream.requests} >= set(CANARIES)       # every key really was used
    with app.app_context():
        tables = [json.dumps([list(map(str, row)) for row in db.session.execute(sa.text(f"SELECT * FROM {table}"))])
                  for table in ("request_logs", "activity_logs", "api_keys", "credit_transactions")]
    captured = capsys.readouterr()
    haystack = "\n".join(seen + tables + [caplog.text, captured.out, captured.err])
    assert "Incorrect API key provided" in haystack                   # the upstream messages did arrive
    for secret in CANARIES:
        assert secret not in haystack
