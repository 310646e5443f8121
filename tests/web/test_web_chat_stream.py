"""The chat stream against a real fake upstream: answers written apart from the page, one upstream
call per answer, reattaching, fallback, failures, Stop, lost workers."""
import html
import re
from datetime import timedelta

import sqlalchemy as sa
import pytest
from helpers import gateway_config
from web_client import WebUser, ask, new_conversation, stream, web  # noqa: F401  (web is a fixture)
from web_checks import live_markup, named_events

from blueprints.web.chat_generation import LOST_AFTER_S
from blueprints.web.chat_stream import LOST_NOTE
from extensions import db
from gateway.affinity import by_affinity
from fake_upstream import Fault
from models import RequestLog, User
from models.conversation import ChatMessage
from models.user import utcnow


@pytest.fixture
def app(make_app, upstream):
    return make_app(gateway_config(upstream, ["m1", "m2"], groups={"main": ["m1", "m2"]}))


def answer(app):
    with app.app_context():
        row = db.session.scalars(sa.select(ChatMessage).where(ChatMessage.role == "assistant")
                                 .order_by(ChatMessage.id.desc())).first()
        db.session.expunge(row)
        return row


def token_text(events):
    """The text the page shows after the last `token` event (each one carries the whole answer so far)."""
    tokens = [data for name, data in events if name == "token"]
    return html.unescape(re.sub(r"<[^>]+>", "", tokens[-1])).strip() if tokens else ""


def final_text(events):
    """The answer's text in the `done` event's bubble."""
    body = re.search(r'<div class="msg-body">(.*?)</div>', events[-1][1], re.S).group(1)
    return html.unescape(re.sub(r"<[^>]+>", "", body)).strip()


def test_answer_streams_from_the_upstream_with_history_and_usage(app, web, upstream):
    alice = web("alice")
    conversation_id = new_conversation(alice, "m1")
    stream(alice, ask(alice, conversation_id, "first question", model="m1"))
    events = stream(alice, ask(alice, conversation_id, "second question", model="m1"))
    assert final_text(events) == "Hello from the fake upstream" and events[-1][0] == "done"
    assert len(upstream.requests) == 2
    sent = upstream.requests[1].body
    assert sent["stream"] is True and sent["messages"] == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "Hello from the fake upstream"},
        {"role": "user", "content": "second question"}]
    row = answer(app)
    assert (row.status, row.model, row.attempts, row.prompt_tokens, row.completion_tokens) == ("done", "m1", 1, 12, 7)
    assert "12 in / 7 out tokens" in events[-1][1]


def test_a_slow_answer_arrives_piece_by_piece(app, web, upstream):
    upstream.script(Fault.paced(0.3), model="m1")
    alice = web("alice")
    events = stream(alice, ask(alice, new_conversation(alice, "m1"), "count to five", model="m1"))
    tokens = [token_text(events[:i + 1]) for i, (name, _) in enumerate(events) if name == "token"]
    assert len(tokens) >= 3 and events[-1][0] == "done"
    assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(tokens, tokens[1:]))    # it grows
    assert final_text(events) == "Hello from the fake upstream"


def test_two_pages_follow_one_answer_with_one_upstream_call(app, web, upstream):
    """A reload, a second tab: each follows the same answer; the upstream is asked once."""
    upstream.script(Fault.paced(0.1), model="m1")
    alice = web("alice")
    url = ask(alice, new_conversation(alice, "m1"), "count to five", model="m1")
    first = alice.get(url, buffered=False)
    body = iter(first.response)
    received = [next(body), next(body)]                 # the ping, then the first text
    assert b"event: token" in received[1]
    second = stream(alice, url)
    received += list(body)
    first.close()
    assert final_text(second) == final_text(named_events(b"".join(received))) == "Hello from the fake upstream"
    assert second[-1][0] == "done" and "Hello from the fake upstream" in second[-1][1]
    assert len(upstream.requests) == 1
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(RequestLog.id))) == 1


def follow_a_slow_answer(alice):
    """Ask for a slowly written answer and follow it from one page; returns (stream URL, the open
    response, its body iterator, the first text event's raw bytes)."""
    url = ask(alice, new_conversation(alice, "m1"), "long answer", model="m1")
    response = alice.get(url, buffered=False)
    body = iter(response.response)
    assert next(body) == b": ping\n\n"
    return url, response, body, next(body)


def test_leaving_the_page_does_not_stop_the_answer_and_a_reconnect_resumes_where_it_was(app, web, upstream):
    upstream.script(Fault.paced(0.3), model="m1")
    alice = web("alice")
    url, response, _, first = follow_a_slow_answer(alice)
    response.close()                                    # F5, or another conversation clicked
    seen = int(re.search(rb"^id: (\d+)$", first, re.M).group(1))
    shown = token_text(named_events(first))
    assert seen == len(shown) > 0
    with alice.get(url, headers={"Last-Event-ID": str(seen)}) as resumed:
        raw = resumed.get_data()
    assert final_text(named_events(raw)) == "Hello from the fake upstream"
    assert all(int(i) > seen for i in re.findall(rb"^id: (\d+)$", raw, re.M))    # nothing it already had
    assert not upstream.requests[0].hung_up             # the upstream never saw the page leave
    row = answer(app)
    assert (row.status, row.content, row.error) == ("done", "Hello from the fake upstream", None)
    with app.app_context():
        assert db.session.scalar(sa.select(RequestLog.status)) == 200


def test_another_worker_follows_the_live_answer(app, make_app, web, upstream):
    """Whichever worker (or instance) serves the reconnect finds the answer: it is read from the database."""
    upstream.script(Fault.paced(0.2), model="m1")
    alice = web("alice")
    url = ask(alice, new_conversation(alice, "m1"), "long answer", model="m1")
    elsewhere = WebUser(make_app(gateway_config(upstream, ["m1", "m2"], groups={"main": ["m1", "m2"]})).test_client())
    elsewhere.login("alice")
    events = stream(elsewhere, url)
    assert final_text(events) == "Hello from the fake upstream" and events[-1][0] == "done"
    assert len(upstream.requests) == 1


def test_failing_model_falls_back_and_the_bubble_says_who_answered(app, web, upstream):
    upstream.script(Fault.status(500), model="m1")
    alice = web("alice")
    events = stream(alice, ask(alice, new_conversation(alice, "m1"), "hi", model="m1"))
    row = answer(app)
    assert row.model == "m2" and row.attempts >= 2 and row.status == "done"
    assert "Answered by <strong class=\"msg-model\">m2</strong>" in events[-1][1]
    assert f"· {row.attempts} attempts" in events[-1][1]


def test_upstream_failure_before_the_first_token_is_shown(app, web, upstream):
    upstream.script(Fault.status(500))
    alice = web("alice")
    events = stream(alice, ask(alice, new_conversation(alice, "m1"), "hi", model="m1"))
    assert [name for name, _ in events] == ["done"]
    assert "All upstream attempts failed" in events[0][1] and 'role="alert"' in events[0][1]
    row = answer(app)
    assert row.status == "error" and row.content == "" and row.attempts >= 2
    with app.app_context():
        user = db.session.scalar(sa.select(User))
        assert user.reserved == 0
        assert db.session.scalar(sa.select(RequestLog.status)) in (502, 503)


def test_stream_broken_midway_keeps_the_text_and_shows_the_error(app, web, upstream):
    upstream.script(Fault.in_stream_error(after=2))
    alice = web("alice")
    events = stream(alice, ask(alice, new_conversation(alice, "m1"), "hi", model="m1"))
    partial = final_text(events)
    assert partial and "Hello from the fake upstream".startswith(partial) and partial != "Hello from the fake upstream"
    assert "The upstream stream broke" in events[-1][1]
    row = answer(app)
    assert (row.status, row.content) == ("error", partial)
    assert len(upstream.requests) == 1                 # never retried after text was sent


def test_stop_ends_the_answer_for_every_page_and_bills_what_was_written(app, web, upstream):
    upstream.script(Fault.paced(0.3), model="m1")
    alice = web("alice")
    url, _, body, first = follow_a_slow_answer(alice)
    first_text = token_text(named_events(first))
    answer_id = re.search(r"/messages/(\d+)/stream", url).group(1)
    assert alice.post(f"/chat/messages/{answer_id}/stop").status_code == 204
    events = named_events(b"".join(body))
    assert events[-1][0] == "done" and "· stopped" in events[-1][1]
    assert upstream.wait_for_hangup(0)
    row = answer(app)
    assert row.status == "stopped" and row.content.startswith(first_text) and row.content != "Hello from the fake upstream"
    assert row.completion_tokens > 0
    with app.app_context():
        log = db.session.scalar(sa.select(RequestLog))
        assert (log.status, log.error) == (499, "stopped by the user")
    assert "· stopped" in alice.get(f"/chat/{row.conversation_id}").get_data(as_text=True)


def test_an_answer_whose_worker_died_is_marked_failed_by_its_reader(app, web, upstream):
    alice = web("alice")
    conversation_id = new_conversation(alice, "m1")
    with app.app_context():
        orphan = ChatMessage(conversation_id=conversation_id, role="assistant", status="streaming", content="Half",
                             requested_model="m1", heartbeat_at=utcnow() - timedelta(seconds=LOST_AFTER_S + 1))
        db.session.add(orphan)
        db.session.commit()
        orphan_id = orphan.id
    events = stream(alice, f"/chat/messages/{orphan_id}/stream?after=4")
    assert [name for name, _ in events] == ["done"] and LOST_NOTE in events[0][1]
    row = answer(app)
    assert (row.status, row.content, row.error) == ("error", "Half", LOST_NOTE)
    assert upstream.requests == []


def test_model_output_is_rendered_inert(app, web, upstream):
    upstream.reply_text = ('<script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1)) '
                           '<div hx-get="/x">y</div>')
    upstream.chunks = 9
    alice = web("alice")
    conversation_id = new_conversation(alice, "m1")
    events = stream(alice, ask(alice, conversation_id, "be evil", model="m1"))
    assert all(live_markup(data) == [] for _, data in events)
    assert final_text(events).startswith("<script>alert(1)</script>")
    assert live_markup(alice.get(f"/chat/{conversation_id}").get_data(as_text=True)) == []


def test_priced_model_without_credit_says_so(make_app, upstream, web):
    """The chat pays like the API: with no balance, a priced model answers 402 in the bubble."""
    app = make_app(gateway_config(upstream, {"paid": {"provider": "openai", "input_per_mtok": 3.0,
                                                      "output_per_mtok": 15.0}}))
    from web_client import WebUser
    alice = WebUser(app.test_client())
    alice.register("alice")
    events = stream(alice, ask(alice, new_conversation(alice, "paid"), "hi", model="paid"))
    assert "Insufficient credit" in events[-1][1] and '<a href="/credits">Add credits</a>' in events[-1][1]
    assert upstream.requests == []


def test_the_growing_answer_is_sent_as_rendered_markdown(app, web, upstream):
    """Each `token` event is the sanitised markdown of the text so far, never raw `**` or `|`."""
    upstream.reply_text, upstream.chunks = "**Bold** start\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nend", 6
    upstream.script(Fault.paced(0.3), model="m1")
    alice = web("alice")
    events = stream(alice, ask(alice, new_conversation(alice, "m1"), "markdown please", model="m1"))
    tokens = [data for name, data in events if name == "token"]
    assert len(tokens) >= 2 and all("**" not in t for t in tokens)
    assert "<strong>Bold</strong>" in tokens[0] and "<table>" in tokens[-1] + events[-1][1]
    assert all(live_markup(t) == [] for t in tokens)


def test_a_conversation_keeps_to_one_operator_key(make_app, upstream):
    """Cache affinity in the chat (`key_order = "affinity"`): every answer of a conversation goes to
    the key its id ranks first."""
    settings = gateway_config(upstream, ["m1"])
    settings["providers"]["openai"]["key_order"] = "affinity"
    app = make_app(settings)
    alice = WebUser(app.test_client())
    alice.register("alice")
    keys = app.extensions["gateway"].settings.providers["openai"].keys
    for _ in range(4):
        conversation_id = new_conversation(alice, "m1")
        expected = by_affinity(keys, f"chat:{conversation_id}")[0].secret
        for question in ("first", "second"):
            stream(alice, ask(alice, conversation_id, question, model="m1"))
            assert upstream.requests[-1].key == expected
