"""A new user's first steps in the chat: a model they can afford preselected, and a model that needs
their own provider key said so, refused with the way out, and never answered by another provider."""
import pytest
import sqlalchemy as sa
from helpers import gateway_config
from web_client import ask, new_conversation, stream, web  # noqa: F401  (web is a fixture)

from extensions import db
from fake_upstream import Fault
from models import User, credit
from models.conversation import ChatMessage, Conversation

PRICED = {"provider": "openai", "input_per_mtok": 1.0, "output_per_mtok": 2.0}


@pytest.fixture
def app(make_app, upstream):
    """A priced operator model, the demo provider, and a model of a provider without operator keys."""
    config = gateway_config(upstream, {"paid": PRICED, "own": {"provider": "anthropic"}},
                            groups={"main": ["own", "paid"]}, demo={"enabled": True})
    config["providers"]["anthropic"]["api_keys"] = []
    return make_app(config)


def grant(app, username, micro):
    with app.app_context():
        credit.grant(db.session.scalar(sa.select(User.id).where(User.username == username)), micro, description="test")
        db.session.commit()


def test_a_user_without_credit_starts_on_the_free_demo_model(app, web):
    alice = web("alice")
    page = alice.get("/chat").get_data(as_text=True)
    assert '<option value="demo-chat" selected>' in page and '<option value="paid" selected>' not in page
    conversation_id = new_conversation(alice, model="")          # "Start chatting" with the preselected model
    with app.app_context():
        assert db.session.get(Conversation, conversation_id).model == "demo-chat"
    events = stream(alice, ask(alice, conversation_id, "hi", model="demo-chat"))
    assert 'class="msg-model">demo-chat</strong>' in events[-1][1] and 'data-status="done"' in events[-1][1]


def test_a_user_with_credit_starts_on_the_first_model(app, web):
    alice = web("alice")
    grant(app, "alice", 1_000_000)
    assert '<option value="paid" selected>' in alice.get("/chat").get_data(as_text=True)


def test_an_own_key_model_is_marked_and_refused_without_a_key(app, web, upstream):
    alice = web("alice")
    grant(app, "alice", 1_000_000)              # credit is not the problem: the key is
    conversation_id = new_conversation(alice, "paid")
    page = alice.get(f"/chat/{conversation_id}").get_data(as_text=True)
    assert '<option value="own">own (your key)</option>' in page and '<option value="paid" selected>paid</option>' in page
    refused = alice.post(f"/chat/{conversation_id}/messages", data={"content": "hi", "model": "own"})
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "served only with your own provider key" in body
    assert '<a href="/provider-keys">Add one on Provider keys</a>' in body
    assert upstream.requests == []
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(ChatMessage.id))) == 0


def test_an_own_key_model_is_answered_with_that_key_and_never_by_another_provider(app, web, upstream):
    alice = web("alice")
    grant(app, "alice", 1_000_000)
    added = alice.post("/provider-keys", data={"provider_name": "anthropic", "name": "mine", "api_key": "sk-ant-mine",
                                               "base_url": ""})
    assert added.status_code == 200
    conversation_id = new_conversation(alice, "own")
    events = stream(alice, ask(alice, conversation_id, "hi", model="own"))
    assert 'class="msg-model">own</strong>' in events[-1][1]
    assert [(r.family, r.key) for r in upstream.requests] == [("anthropic", "sk-ant-mine")]

    upstream.script(Fault.status(500), model="own")          # the user's provider fails: no silent fallback
    events = stream(alice, ask(alice, conversation_id, "again", model="own"))
    assert 'role="alert"' in events[-1][1] and 'data-status="error"' in events[-1][1]
    assert {r.family for r in upstream.requests} == {"anthropic"}         # "paid" (openai) was never asked
