"""Keeping conversations: delete with undo, reuse of the empty one, rename, settings, search,
regenerate, edit-and-resend, one answer at a time, and every route scoped to its owner."""
from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers import gateway_config
from web_client import ask, new_conversation, stream, web  # noqa: F401  (web is a fixture)

from blueprints.web.chat_manage import UNDO_S
from extensions import db
from fake_upstream import Fault
from models import RequestLog, User, credit
from models.conversation import ChatMessage, Conversation


@pytest.fixture
def app(make_app, upstream):
    return make_app(gateway_config(upstream, {"m1": {"provider": "openai", "input_per_mtok": 1.0, "output_per_mtok": 1.0},
                                              "m2": {"provider": "openai"}}))


def rows(app, model, *where):
    with app.app_context():
        return db.session.scalars(sa.select(model).where(*where).order_by(model.id)).all()


def messages(app, conversation_id):
    return [(m.role, m.content) for m in rows(app, ChatMessage, ChatMessage.conversation_id == conversation_id)]


def test_delete_offers_undo_then_purges_once_the_window_is_over(app, web):
    alice = web("alice")
    kept, gone = new_conversation(alice, "m2"), None
    stream(alice, ask(alice, kept, "keep me", model="m2"))
    deleted = alice.post(f"/chat/{kept}/delete", htmx=False)
    assert deleted.status_code == 302 and deleted.location.endswith(f"/chat?undo={kept}")
    assert alice.get(f"/chat/{kept}").status_code == 404
    page = alice.get(deleted.location, follow_redirects=True).get_data(as_text=True)
    assert "Deleted “keep me”." in page and f'action="/chat/{kept}/restore"' in page and "data-expires-in=" in page
    assert alice.post(f"/chat/{kept}/restore", htmx=False).status_code == 302           # Undo
    assert "keep me" in alice.get(f"/chat/{kept}").get_data(as_text=True)
    assert messages(app, kept)[0] == ("user", "keep me")

    gone = kept
    alice.post(f"/chat/{gone}/delete", htmx=False)
    with app.app_context():                             # the undo window passes
        db.session.get(Conversation, gone).deleted_at -= timedelta(seconds=UNDO_S + 1)
        db.session.commit()
    assert alice.post(f"/chat/{gone}/restore", htmx=False).status_code == 404
    assert "Deleted" not in alice.get(f"/chat?undo={gone}", follow_redirects=True).get_data(as_text=True)
    other = new_conversation(alice, "m2")               # a new conversation purges the expired one
    assert rows(app, Conversation, Conversation.id == gone) == [] and messages(app, gone) == []
    alice.post(f"/chat/{other}/delete", htmx=False)
    with app.app_context():
        db.session.get(Conversation, other).deleted_at -= timedelta(seconds=UNDO_S + 1)
        db.session.commit()
    third = new_conversation(alice, "m2")
    alice.post(f"/chat/{third}/delete", htmx=False)     # and so does the next delete, which stays undoable
    assert rows(app, Conversation, Conversation.id == other) == []
    assert len(rows(app, Conversation, Conversation.id == third)) == 1


def test_new_conversation_reuses_the_empty_one(app, web):
    alice = web("alice")
    first = new_conversation(alice, "m1")
    assert new_conversation(alice, "m2") == first                 # still empty: reused, with the new model
    assert rows(app, Conversation)[0].model == "m2"
    stream(alice, ask(alice, first, "now it has a message", model="m2"))
    second = new_conversation(alice, "m2")
    assert second != first and new_conversation(alice) == second
    assert len(rows(app, Conversation)) == 2


def test_rename_and_titles_are_plain_text(app, web):
    alice = web("alice")
    conversation_id = new_conversation(alice, "m2")
    stream(alice, ask(alice, conversation_id, "**Bold** `code` question\nsecond line", model="m2"))
    assert rows(app, Conversation)[0].title == "Bold code question"
    assert alice.post(f"/chat/{conversation_id}/rename", data={"title": "  Trip   plans "}).status_code == 302
    assert rows(app, Conversation)[0].title == "Trip plans"
    refused = alice.post(f"/chat/{conversation_id}/rename", data={"title": "x" * 121}, follow_redirects=True)
    assert "A title is 1 to 120 characters" in refused.get_data(as_text=True)
    assert rows(app, Conversation)[0].title == "Trip plans"


@pytest.mark.parametrize("field, value, error", [
    ("temperature", "2.5", "Temperature is a number from 0 to 2"),
    ("temperature", "warm", "Temperature is a number from 0 to 2"),
    ("temperature", "nan", "Temperature is a number from 0 to 2"),
    ("max_tokens", "0", "Max tokens is a whole number from 1 to 128,000"),
    ("max_tokens", "1.5", "Max tokens is a whole number"),
    ("system_prompt", "x" * 32_001, "The system prompt is limited"),
])
def test_bad_settings_change_nothing_and_keep_what_was_typed(app, web, field, value, error):
    alice = web("alice")
    conversation_id = new_conversation(alice, "m2")
    form = {"system_prompt": "Be brief.", "temperature": "0.5", "max_tokens": "300", field: value}
    response = alice.post(f"/chat/{conversation_id}/settings", data=form)
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and error in body
    if field != "system_prompt":
        assert f'value="{value}"' in body and "Be brief." in body
    conversation = rows(app, Conversation)[0]
    assert (conversation.system_prompt, conversation.temperature, conversation.max_tokens) == ("", None, None)


def test_settings_reach_the_upstream_and_max_tokens_bounds_the_hold(app, web, upstream):
    """m1 costs 1 credit per million tokens: 0.0041 credits cannot cover the default 4,096-token
    hold, but can once max tokens is 1,000; the upstream is told the same limit that was held."""
    alice = web("alice")
    with app.app_context():
        credit.grant(db.session.scalar(sa.select(User.id).where(User.username == "alice")), 4_100, description="test")
        db.session.commit()
    conversation_id = new_conversation(alice, "m1")
    refused = stream(alice, ask(alice, conversation_id, "hello", model="m1"))
    assert "Insufficient credit" in refused[-1][1] and upstream.requests == []
    saved = alice.post(f"/chat/{conversation_id}/settings",
                       data={"system_prompt": "Answer like a pirate.", "temperature": "0.3", "max_tokens": "1000"})
    assert saved.status_code == 200 and "Saved" in saved.get_data(as_text=True)
    alice.post(f"/chat/{conversation_id}/regenerate", htmx=False)
    stream(alice, f"/chat/messages/{rows(app, ChatMessage)[-1].id}/stream")
    sent = upstream.requests[-1].body
    assert sent["messages"] == [{"role": "system", "content": "Answer like a pirate."},
                                {"role": "user", "content": "hello"}]
    assert sent["temperature"] == 0.3 and sent["max_completion_tokens"] == 1000
    assert rows(app, ChatMessage)[-1].status == "done"


def test_search_finds_titles_and_text_of_ones_own_conversations_only(app, web):
    alice, bob = web("alice"), web("bob")
    for user, question in ((alice, "Holiday in Lisbon"), (alice, "Tax question"), (bob, "Lisbon for bob")):
        stream(user, ask(user, new_conversation(user, "m2"), question, model="m2"))
    def titles(response):
        return response.get_data(as_text=True)
    found = titles(alice.get("/chat/search", query_string={"q": "lisbon"}))
    assert "Holiday in Lisbon" in found and "Tax question" not in found and "bob" not in found
    in_text = titles(alice.get("/chat/search", query_string={"q": "fake upstream"}))     # the answers' text
    assert "Holiday in Lisbon" in in_text and "Tax question" in in_text
    nothing = titles(alice.get("/chat/search", query_string={"q": "100%_"}))            # wildcards are literal
    assert "No conversation mentions “100%_”." in nothing
    assert "Tax question" in titles(alice.get("/chat/search", query_string={"q": " "}))  # empty: the whole list


def test_regenerate_replaces_the_last_answer(app, web, upstream):
    alice = web("alice")
    conversation_id = new_conversation(alice, "m2")
    stream(alice, ask(alice, conversation_id, "tell me", model="m2"))
    old = rows(app, ChatMessage)[-1].id
    upstream.reply_text = "A second try."
    assert alice.post(f"/chat/{conversation_id}/regenerate", htmx=False).status_code == 302
    answer = rows(app, ChatMessage)[-1]
    stream(alice, f"/chat/messages/{answer.id}/stream")
    assert answer.id != old and messages(app, conversation_id) == [("user", "tell me"), ("assistant", "A second try.")]
    assert upstream.requests[-1].body["messages"] == [{"role": "user", "content": "tell me"}]


def test_edit_and_resend_replaces_the_later_turns(app, web, upstream):
    alice = web("alice")
    conversation_id = new_conversation(alice, "m2")
    for question in ("first", "second", "third"):
        stream(alice, ask(alice, conversation_id, question, model="m2"))
    second = rows(app, ChatMessage, ChatMessage.content == "second")[0].id
    response = alice.post(f"/chat/{conversation_id}/messages/{second}/edit", data={"content": "second, better"},
                          htmx=False)
    assert response.status_code == 302
    stream(alice, f"/chat/messages/{rows(app, ChatMessage)[-1].id}/stream")
    reply = "Hello from the fake upstream"
    assert messages(app, conversation_id) == [("user", "first"), ("assistant", reply),
                                              ("user", "second, better"), ("assistant", reply)]
    assert [m["content"] for m in upstream.requests[-1].body["messages"]] == ["first", reply, "second, better"]
    answer_id = rows(app, ChatMessage)[-1].id
    assert alice.post(f"/chat/{conversation_id}/messages/{answer_id}/edit", data={"content": "x"}).status_code == 404
    edited = rows(app, ChatMessage, ChatMessage.content == "second, better")[0].id
    empty = alice.post(f"/chat/{conversation_id}/messages/{edited}/edit", data={"content": " "}, htmx=False)
    assert empty.status_code == 302 and len(messages(app, conversation_id)) == 4      # refused, nothing changed


def test_one_answer_at_a_time(app, web, upstream):
    """Questions cannot interleave: while an answer is written, asking again is refused."""
    upstream.script(Fault.paced(0.3), model="m2", times=1)
    alice = web("alice")
    conversation_id = new_conversation(alice, "m2")
    url = ask(alice, conversation_id, "slow one", model="m2")
    busy = alice.post(f"/chat/{conversation_id}/messages", data={"content": "and another", "model": "m2"})
    assert busy.status_code == 422 and "An answer is still being written" in busy.get_data(as_text=True)
    assert alice.post(f"/chat/{conversation_id}/regenerate", htmx=False).status_code == 302
    stream(alice, url)
    assert len(messages(app, conversation_id)) == 2 and len(upstream.requests) == 1
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(RequestLog.id))) == 1


def test_another_users_conversation_is_not_found_by_any_route(app, web):
    alice, bob = web("alice"), web("bob")
    conversation_id = new_conversation(alice, "m2")
    stream(alice, ask(alice, conversation_id, "mine", model="m2"))
    question = rows(app, ChatMessage)[0].id
    for path, data in ((f"/chat/{conversation_id}/rename", {"title": "stolen"}),
                       (f"/chat/{conversation_id}/settings", {"system_prompt": "stolen"}),
                       (f"/chat/{conversation_id}/regenerate", {}),
                       (f"/chat/{conversation_id}/messages/{question}/edit", {"content": "stolen"}),
                       (f"/chat/{conversation_id}/delete", {})):
        assert bob.post(path, data=data, htmx=False).status_code == 404, path
    assert f"/chat/{conversation_id}" not in bob.get("/chat/search", query_string={"q": "mine"}).get_data(as_text=True)
    alice.post(f"/chat/{conversation_id}/delete", htmx=False)
    assert bob.post(f"/chat/{conversation_id}/restore", htmx=False).status_code == 404
    conversation = rows(app, Conversation)[0]
    assert (conversation.title, conversation.system_prompt) == ("mine", "")
    assert messages(app, conversation_id) == [("user", "mine"), ("assistant", "Hello from the fake upstream")]
