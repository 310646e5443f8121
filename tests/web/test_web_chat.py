"""/chat with the offline demo model: conversations, the posted bubbles, the stream, ownership."""
import re

import sqlalchemy as sa
from web_client import ask, new_conversation, stream, web  # noqa: F401  (web is a fixture)

from extensions import db
from models import RequestLog
from models.conversation import ChatMessage, Conversation


def without_token(html):
    """A bubble without its forms' CSRF token, which is signed with the time it was made."""
    return re.sub(r'name="csrf_token" value="[^"]+"', 'name="csrf_token"', html)


def test_empty_state_then_new_conversation(app, web):
    alice = web("alice")
    page = alice.get("/chat").get_data(as_text=True)
    assert "No conversations yet" in page and '<option value="demo-chat" selected>' in page
    conversation_id = new_conversation(alice)
    assert alice.get("/chat").location.endswith(f"/chat/{conversation_id}")
    page = alice.get(f"/chat/{conversation_id}").get_data(as_text=True)
    assert "No messages yet" in page and 'id="composer"' in page


def test_question_is_answered_streamed_and_saved(app, web):
    alice = web("alice")
    conversation_id = new_conversation(alice)
    url = ask(alice, conversation_id, "Hello there")
    events = stream(alice, url)
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names) <= {"token", "done"}
    text = "This is the demo model: no upstream was called. You said: Hello there"
    final = events[-1][1]
    assert f"<p>{text}</p>" in final
    assert "Answered by <strong class=\"msg-model\">demo-chat</strong>" in final and "1 attempt" in final
    assert "sse-connect" not in final
    with app.app_context():
        answer = db.session.scalars(sa.select(ChatMessage).where(ChatMessage.role == "assistant")).one()
        assert (answer.status, answer.model, answer.attempts, answer.content) == ("done", "demo-chat", 1, text)
        assert answer.completion_tokens > 0
        log = db.session.scalars(sa.select(RequestLog)).one()
        assert (log.endpoint, log.api_key_id, log.model, log.status, log.stream) == ("web-chat", None, "demo-chat", 200, True)
        assert db.session.get(Conversation, conversation_id).title == "Hello there"
    page = alice.get(f"/chat/{conversation_id}").get_data(as_text=True)
    assert "sse-connect" not in page and "You said: Hello there" in page


def test_history_is_sent_and_the_model_can_change_between_turns(app, web):
    alice = web("alice")
    conversation_id = new_conversation(alice)
    stream(alice, ask(alice, conversation_id, "first"))
    events = stream(alice, ask(alice, conversation_id, "second", model="demo-mini"))
    assert "demo-mini" in events[-1][1]
    with app.app_context():
        answers = db.session.scalars(sa.select(ChatMessage).where(ChatMessage.role == "assistant")
                                     .order_by(ChatMessage.id)).all()
        assert [a.model for a in answers] == ["demo-chat", "demo-mini"]
        assert db.session.get(Conversation, conversation_id).model == "demo-mini"


def test_reconnect_gets_the_stored_answer_without_a_second_call(app, web):
    """EventSource reconnects on its own; a second GET only reads, it never routes (or bills) again."""
    alice = web("alice")
    url = ask(alice, new_conversation(alice), "once")
    first = stream(alice, url)
    with app.app_context():
        text = db.session.scalar(sa.select(ChatMessage.content).where(ChatMessage.role == "assistant"))
    again = stream(alice, url)                      # a new page of an ended answer: the final bubble
    assert [name for name, _ in again] == ["done"] and without_token(again[0][1]) == without_token(first[-1][1])
    caught_up = stream(alice, url, headers={"Last-Event-ID": str(len(text))})
    assert [name for name, _ in caught_up] == ["done"] and without_token(caught_up[0][1]) == without_token(first[-1][1])
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(RequestLog.id))) == 1


def test_invalid_questions_are_refused(app, web):
    alice = web("alice")
    conversation_id = new_conversation(alice)
    empty = alice.post(f"/chat/{conversation_id}/messages", data={"content": "  ", "model": "demo-chat"})
    assert empty.status_code == 422 and "Type a message first." in empty.get_data(as_text=True)
    assert empty.headers["HX-Retarget"] == "#composer-error"
    unknown = alice.post(f"/chat/{conversation_id}/messages", data={"content": "hi", "model": "gpt-nope"})
    assert unknown.status_code == 422 and "Pick a model" in unknown.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(ChatMessage.id))) == 0


def test_another_users_conversations_are_not_found(app, web):
    alice, bob = web("alice"), web("bob")
    conversation_id = new_conversation(alice)
    url = ask(alice, conversation_id, "private question")
    assert bob.get(f"/chat/{conversation_id}").status_code == 404
    assert bob.post(f"/chat/{conversation_id}/messages", data={"content": "x", "model": "demo-chat"}).status_code == 404
    assert bob.post(f"/chat/{conversation_id}/delete", htmx=False).status_code == 404
    assert bob.get(url).status_code == 404
    answer_id = re.search(r"/messages/(\d+)/stream", url).group(1)
    assert bob.post(f"/chat/messages/{answer_id}/stop").status_code == 404
    assert "private question" not in bob.get("/chat", follow_redirects=True).get_data(as_text=True)
    assert stream(alice, url)[-1][0] == "done"
    assert alice.post(f"/chat/messages/{answer_id}/stop").status_code == 204     # an ended answer stays as it is
    with app.app_context():
        answer = db.session.scalar(sa.select(ChatMessage).where(ChatMessage.role == "assistant"))
        assert (answer.status, answer.stop_requested) == ("done", False)

