"""Users' own provider keys: the seed-001 API, priority, watched failover, encryption at rest."""
import subprocess
import time

import pytest
import sqlalchemy as sa

from app import create_app
from conftest import TEST_ENCRYPTION_KEY, make_key, make_user, sqlite_only
from extensions import db
from fake_upstream import Fault
from gateway.vault import VaultError
from helpers import gateway_config
from models import UserProviderKey
from servers import create_database

API = "/api/v1/provider-keys"
HELLO = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def gateway(make_app, upstream):
    app = make_app(gateway_config(upstream, ["m1"], keys=("operator-key",), retry={"max_attempts": 1}))
    return app, app.test_client(), {"Authorization": f"Bearer {make_key(app, make_user(app))}"}


def add_key(client, headers, secret, name, **extra):
    response = client.post(API, json={"provider_name": "openai", "api_key": secret, "name": name, **extra},
                           headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_crud_never_echoes_the_key_and_is_owner_scoped(gateway, make_app):
    """Create → 201 without the key; list/filter/get; select one unselects the other; delete → 204; others' ids 404."""
    app, client, headers = gateway
    first = add_key(client, headers, "sk-user-one-aaaa", "First")
    second = add_key(client, headers, "sk-user-two-bbbb", "Second")
    assert first["id"].startswith("pk_") and "sk-user-one" not in str(first) and first["is_selected"] is False
    assert [k["name"] for k in client.get(API + "?provider=openai", headers=headers).get_json()] == ["First", "Second"]
    assert client.get(API + "?provider=google", headers=headers).get_json() == []
    client.patch(f"{API}/{first['id']}", json={"is_selected": True}, headers=headers)
    client.patch(f"{API}/{second['id']}", json={"is_selected": True, "name": "Renamed"}, headers=headers)
    listed = {k["name"]: k["is_selected"] for k in client.get(API, headers=headers).get_json()}
    assert listed == {"First": False, "Renamed": True}
    bob = {"Authorization": f"Bearer {make_key(app, make_user(app, 'bob'))}"}
    for method in ("get", "patch", "delete"):
        assert getattr(client, method)(f"{API}/{first['id']}", json={}, headers=bob).status_code == 404
    assert client.get(f"{API}/nonsense", headers=headers).status_code == 404
    bad = client.post(API, json={"provider_name": "nope", "api_key": "x"}, headers=headers)
    assert bad.status_code == 400 and bad.get_json()["code"] == 400 and "openai" in bad.get_json()["detail"]
    assert client.delete(f"{API}/{first['id']}", headers=headers).status_code == 204
    assert client.delete(API + "?provider_name=openai", headers=headers).status_code == 204
    assert client.get(API, headers=headers).get_json() == []
    actions = [row["action"] for row in client.get("/api/v1/activity-logs?limit=20", headers=headers).get_json()]
    assert actions[::-1] == ["ADD", "ADD", "SELECT", "UNSELECT", "SELECT", "DELETE", "DELETE"]


def test_header_beats_selected_beats_operator_key(gateway, upstream):
    """Which credential the upstream received proves the priority order."""
    app, client, headers = gateway
    assert client.post("/v1/chat/completions", json=HELLO, headers=headers).status_code == 200
    key = add_key(client, headers, "sk-user-selected", "Mine")
    add_key(client, headers, "sk-user-other", "Other")
    client.patch(f"{API}/{key['id']}", json={"is_selected": True}, headers=headers)
    client.post("/v1/chat/completions", json=HELLO, headers=headers)
    client.post("/v1/chat/completions", json=HELLO, headers={**headers, "X-OpenAI-API-Key": "sk-from-header"})
    assert [r.key for r in upstream.requests] == ["operator-key", "sk-user-selected", "sk-from-header"]


def test_selected_key_429_fails_over_and_is_logged(gateway, upstream):
    """429 on the selected key: the same request succeeds on the next key, UNSELECT/SELECT are logged,
    the 429 key is skipped until its Retry-After; a 401 key stays out."""
    app, client, headers = gateway
    old = add_key(client, headers, "sk-old-key", "Old key")
    new = add_key(client, headers, "sk-new-key", "New key")
    client.patch(f"{API}/{old['id']}", json={"is_selected": True}, headers=headers)
    upstream.script(Fault.status(429, "rate limit exceeded", retry_after=1), key="sk-old-key", times=1)
    assert client.post("/v1/chat/completions", json=HELLO, headers=headers).status_code == 200
    assert [r.key for r in upstream.requests] == ["sk-old-key", "sk-new-key"]
    logs = client.get("/api/v1/activity-logs?limit=2", headers=headers).get_json()
    assert [(row["action"], row["key_id"]) for row in logs] == [("SELECT", new["id"]), ("UNSELECT", old["id"])]
    assert "429" in logs[1]["description"] and "Old key" in logs[1]["description"]
    assert client.get(f"{API}/{new['id']}", headers=headers).get_json()["is_selected"] is True
    upstream.reset()
    client.post("/v1/chat/completions", json=HELLO, headers=headers)
    assert [r.key for r in upstream.requests] == ["sk-new-key"]            # the cooling key is skipped
    time.sleep(1.1)
    upstream.reset()
    upstream.script(Fault.status(401, "invalid key"), key="sk-new-key")
    assert client.post("/v1/chat/completions", json=HELLO, headers=headers).status_code == 200
    assert [r.key for r in upstream.requests] == ["sk-new-key", "sk-old-key"]   # cooled down: back in play
    upstream.reset()
    client.post("/v1/chat/completions", json=HELLO, headers=headers)
    assert [r.key for r in upstream.requests] == ["sk-old-key"]            # the 401 key stays out
    assert client.get(f"{API}/{new['id']}", headers=headers).get_json()["status"] == "invalid"


@sqlite_only
def test_stored_keys_are_encrypted_on_sqlite(gateway, tmp_path):
    """The SQLite file holds no provider key in plaintext."""
    app, client, headers = gateway
    add_key(client, headers, "sk-canary-plaintext-0001", "Canary")
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("gateway.sqlite*"))
    assert b"sk-canary-plaintext-0001" not in raw and b"Canary" in raw


def test_stored_keys_are_encrypted_on_postgresql(postgres, upstream):
    """pg_dump of the database holds no provider key in plaintext."""
    url = create_database(postgres, "encrypted_keys")
    app = create_app({"TESTING": True, "SECRET_KEY": "t", "SQLALCHEMY_DATABASE_URI": url,
                      "GATEWAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
                      "GATEWAY_SETTINGS": __import__("gateway.config", fromlist=["parse"]).parse(
                          gateway_config(upstream, ["m1"]), {})})
    headers = {"Authorization": f"Bearer {make_key(app, make_user(app))}"}
    add_key(app.test_client(), headers, "sk-canary-postgres-0002", "Canary")
    with app.app_context():
        db.engine.dispose()
    from servers import postgres_bin
    port = url.split(":")[-1].split("/")[0]
    dump = subprocess.run([f"{postgres_bin()}/pg_dump", "-h", "127.0.0.1", "-p", port, "-U", "gateway",
                           "encrypted_keys"], capture_output=True, check=True).stdout
    assert b"sk-canary-postgres-0002" not in dump and b"Canary" in dump


def test_rotation_and_wrong_keys(make_app, upstream, tmp_path):
    """Rotation re-encrypts under the new key; old ciphertext then stops decrypting; a wrong key fails at start."""
    from cryptography.fernet import Fernet

    old_key, new_key = TEST_ENCRYPTION_KEY, Fernet.generate_key().decode()
    config = gateway_config(upstream, ["m1"])
    app = make_app(config)
    headers = {"Authorization": f"Bearer {make_key(app, make_user(app))}"}
    add_key(app.test_client(), headers, "sk-rotate-me-0003", "Rotating")
    with app.app_context():
        before = db.session.scalar(sa.select(UserProviderKey.ciphertext))
    rotating = make_app(config, GATEWAY_ENCRYPTION_KEYS=f"{new_key},{old_key}")
    assert "re-encrypted 1" in rotating.test_cli_runner().invoke(args=["provider-keys", "rotate"]).output
    rotated = make_app(config, GATEWAY_ENCRYPTION_KEYS=new_key)
    with rotated.app_context():
        row = db.session.scalar(sa.select(UserProviderKey))
        assert row.ciphertext != before
        assert rotated.extensions["vault"].decrypt(row.ciphertext) == "sk-rotate-me-0003"
        with pytest.raises(VaultError):
            rotated.extensions["vault"].decrypt(before)
    with pytest.raises(VaultError, match="cannot be decrypted"):
        make_app(config, GATEWAY_ENCRYPTION_KEYS=Fernet.generate_key().decode())
    with pytest.raises(VaultError, match="not set"):
        make_app(config, GATEWAY_ENCRYPTION_KEYS="")
    with pytest.raises(VaultError, match="not a Fernet key"):
        make_app(config, GATEWAY_ENCRYPTION_KEYS="not-a-key")
