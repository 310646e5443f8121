"""The SSRF guard sees through IPv6 addresses that carry an inward IPv4 address."""
import pytest

from conftest import make_key, make_user
from extensions import db
from gateway import ssrf
from helpers import gateway_config
from models import UserProviderKey

INWARD = [
    pytest.param("::127.0.0.1", "127.0.0.1", id="ipv4-compatible"),
    pytest.param("::ffff:127.0.0.1", "127.0.0.1", id="ipv4-mapped"),
    pytest.param("::ffff:0:a9fe:a9fe", "169.254.169.254", id="ipv4-translated"),
    pytest.param("64:ff9b::7f00:1", "127.0.0.1", id="nat64"),
    pytest.param("64:ff9b::a9fe:a9fe", "169.254.169.254", id="nat64-metadata"),
    pytest.param("64:ff9b:1::808:808", "64:ff9b:1::808:808", id="nat64-local-use"),
    pytest.param("2002:7f00:1::1", "127.0.0.1", id="6to4"),
    pytest.param("2002:a00:1::1", "10.0.0.1", id="6to4-private"),
    pytest.param("2001:0:4136:e378:8000:63bf:80ff:fffe", None, id="teredo"),
]


@pytest.fixture
def gateway(make_app, upstream):
    app = make_app(gateway_config(upstream, ["m1"], keys=("operator-key",), retry={"max_attempts": 1}))
    user = make_user(app)
    return app, user, {"Authorization": f"Bearer {make_key(app, user)}"}


@pytest.mark.parametrize("address, embedded", INWARD)
def test_saving_an_embedded_inward_address_is_refused(gateway, address, embedded):
    app, _user, headers = gateway
    response = app.test_client().post("/api/v1/provider-keys", headers=headers, json={
        "provider_name": "openai", "api_key": "sk-x", "base_url": f"http://[{address}]:8080/v1"})
    assert response.status_code == 400 and response.get_json()["error_type"] == "unsafe_url"
    assert embedded is None or f"({embedded})" in response.get_json()["detail"]
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(UserProviderKey.id))) == 0


@pytest.mark.parametrize("address, embedded", INWARD)
def test_a_stored_embedded_inward_address_is_not_called(gateway, upstream, address, embedded):
    """A URL stored before the guard knew these forms is refused at call time: the operator's key serves."""
    app, user, headers = gateway
    with app.app_context():
        db.session.add(UserProviderKey(user_id=user, provider_name="openai", name="inward", last4="zzzz",
                                       ciphertext=app.extensions["vault"].encrypt("sk-inward-zzzz"),
                                       base_url=f"http://[{address}]:{upstream.port}/v1", is_selected=True))
        db.session.commit()
    response = app.test_client().post("/v1/chat/completions", headers=headers,
                                      json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    assert [r.key for r in upstream.requests] == ["operator-key"]


@pytest.mark.parametrize("address, embedded", INWARD)
def test_a_connection_that_reached_an_embedded_inward_address_is_refused(address, embedded):
    """The connect-time check (the users' transport) applies the same rule to the address a connection would reach."""
    with pytest.raises(ssrf.UnsafeURL):
        ssrf.check_address(address, "rebound.example")


@pytest.mark.parametrize("address", ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "2606:4700::1111"])
def test_embedded_public_addresses_pass(address):
    ssrf.check_address(address, "public.example")


def test_an_allow_listed_range_covers_its_embedded_forms():
    ssrf.check_address("64:ff9b::a00:5", "vllm.internal", ("10.0.0.0/8",))
    with pytest.raises(ssrf.UnsafeURL):
        ssrf.check_address("64:ff9b::7f00:1", "vllm.internal", ("10.0.0.0/8",))
