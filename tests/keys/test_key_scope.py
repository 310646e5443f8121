"""Managing keys needs a key without limits of its own: a capped key cannot lift its own cap, and a
model-limited key cannot add, change or delete its owner's provider keys."""
import pytest
import sqlalchemy as sa

from conftest import make_key, make_user
from extensions import db
from models import ApiKey, UserProviderKey

LIMITS = {"quota-limited": {"unlimited_quota": False, "remain_quota": 1_000},
          "model-limited": {"model_limits": ["demo-chat"]}}


@pytest.mark.parametrize("limits", LIMITS.values(), ids=LIMITS.keys())
def test_a_limited_key_may_not_manage_keys(app, limits):
    user_id = make_user(app)
    client = app.test_client()
    limited = {"Authorization": f"Bearer {make_key(app, user_id, 'limited', **limits)}"}
    with app.app_context():
        key_id = db.session.scalar(sa.select(ApiKey.id))
    quota_before = key_row(app, key_id)
    refused = [client.put(f"/api/keys/{key_id}/quota", json={"remain_quota": 500_000_000}, headers=limited),
               client.delete(f"/api/keys/{key_id}", headers=limited),
               client.post("/api/v1/provider-keys", headers=limited,
                           json={"provider_name": "demo", "api_key": "sk-some-provider-key", "name": "x"})]
    for response in refused:
        assert response.status_code == 403
        assert response.get_json()["error_type"] == "key_management_not_allowed"
    assert key_row(app, key_id) == quota_before
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(UserProviderKey)) == 0


def test_a_key_without_limits_manages_its_owners_keys(app):
    user_id = make_user(app)
    client = app.test_client()
    capped = make_key(app, user_id, "capped", unlimited_quota=False, remain_quota=1_000)
    manager = {"Authorization": f"Bearer {make_key(app, user_id, 'manager')}"}
    with app.app_context():
        capped_id = db.session.scalar(sa.select(ApiKey.id).where(ApiKey.name == "capped"))
    assert capped
    response = client.put(f"/api/keys/{capped_id}/quota", json={"remain_quota": 500_000}, headers=manager)
    assert response.status_code == 200 and response.get_json()["data"]["remain_quota"] == 500_000


def key_row(app, key_id):
    with app.app_context():
        key = db.session.get(ApiKey, key_id)
        return key.status, key.remain_quota, key.unlimited_quota
