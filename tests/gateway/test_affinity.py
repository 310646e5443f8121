"""Cache affinity, proven from the fake upstream's log: with three operator keys, conversations spread over
them and each stays on one key, on every app instance (sharing health through the state file or Redis),
whichever names it (a client's session header, a Responses chain, `user` + how it opens); a conversation
whose key fails moves to one other key, and comes back when the key does."""
import os
import subprocess
import uuid

import pytest
from api.test_claude_code import claude_binary
from conftest import make_key, make_user
from fake_upstream import Fault
from helpers import gateway_config, live_server

SECRETS = ("key-a", "key-b", "key-c")
CONVERSATIONS = 24


def with_affinity(settings):
    """The configuration with every provider's operator keys ordered per conversation."""
    for provider in settings["providers"].values():
        provider["key_order"] = "affinity"
    return settings


def config(upstream, **sections):
    return with_affinity(gateway_config(upstream, {"m1": {"provider": "openai"}, "claude-x": {"provider": "anthropic"}},
                                        keys=SECRETS, retry={"max_attempts": 3}, **sections))


@pytest.fixture
def gateway(make_app, upstream):
    """One app instance and a caller's headers."""
    app = make_app(config(upstream))
    return app, {"Authorization": f"Bearer {make_key(app, make_user(app))}"}


def chat(client, headers, session=None, messages=None, **extra):
    """One served chat turn; `session` goes in Codex's header."""
    if session is not None:
        headers = {**headers, "session_id": session}
    body = {"model": "m1", "messages": messages or [{"role": "user", "content": "hi"}], **extra}
    response = client.post("/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 200 and "error" not in response.get_data(as_text=True)


def last_key(upstream):
    return upstream.requests[-1].key


def first_keys(client, headers, upstream):
    """Open each conversation with one request: the key each first went to, by conversation number."""
    keys = {}
    for n in range(CONVERSATIONS):
        chat(client, headers, f"conv-{n}")
        keys[n] = last_key(upstream)
    return keys


def keys_of(upstream, start=0):
    return [r.key for r in upstream.requests[start:]]


def test_conversations_spread_over_the_keys_and_each_keeps_its_key(gateway, upstream):
    app, headers = gateway
    client = app.test_client()
    chosen = first_keys(client, headers, upstream)
    for stream in (False, True):
        for n in range(CONVERSATIONS):
            chat(client, headers, f"conv-{n}", stream=stream)
            assert last_key(upstream) == chosen[n]
    assert set(chosen.values()) == set(SECRETS)
    assert len(upstream.requests) == 3 * CONVERSATIONS            # one call each: no key was tried in vain


def test_without_a_conversation_source_the_keys_keep_their_order(make_app, upstream):
    """Embeddings name no conversation: the operator's first key serves, as before affinity."""
    app = make_app(with_affinity(gateway_config(upstream, {"e1": {"provider": "openai", "kind": "embedding"}},
                                                keys=SECRETS)))
    headers = {"Authorization": f"Bearer {make_key(app, make_user(app))}"}
    for n in range(5):
        response = app.test_client().post("/v1/embeddings", json={"model": "e1", "input": f"text {n}"},
                                          headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
    assert keys_of(upstream) == ["key-a"] * 5


@pytest.mark.parametrize("share", ["state_file", "redis"])
def test_two_instances_send_a_conversation_to_the_same_key_and_move_it_together(make_app, upstream, request, share):
    """Two apps on one database (health shared by the state file, or by Redis): a conversation lands on
    one key through either; after its key answers 401 through the first, the second moves it to the
    same other key at once, without trying the bad one."""
    overrides = {"REDIS_URL": request.getfixturevalue("redis_proc").url} if share == "redis" else {}
    first, second = make_app(config(upstream), **overrides), make_app(config(upstream), **overrides)
    headers = {"Authorization": f"Bearer {make_key(first, make_user(first))}"}
    one, two = first.test_client(), second.test_client()
    seen = set()
    for n in range(CONVERSATIONS):
        chat(one, headers, f"conv-{n}")
        seen.add(last_key(upstream))
        chat(two, headers, f"conv-{n}")
        assert last_key(upstream) == upstream.requests[-2].key
    assert seen == set(SECRETS)
    chat(one, headers, "moving")
    bad = last_key(upstream)
    upstream.script(Fault.status(401, "invalid key"), key=bad)
    start = len(upstream.requests)
    chat(one, headers, "moving")
    moved_to = last_key(upstream)
    assert keys_of(upstream, start) == [bad, moved_to] and moved_to != bad
    start = len(upstream.requests)
    chat(two, headers, "moving")
    chat(one, headers, "moving")
    assert keys_of(upstream, start) == [moved_to, moved_to]


def test_a_failing_key_moves_only_its_conversations_each_to_one_other_key_and_back(gateway, upstream):
    """401 takes a key out: its conversations fail over (the failing request included) and then stay on
    one other key each; the other conversations do not move. When the key is back, so are they."""
    app, headers = gateway
    client = app.test_client()
    home = first_keys(client, headers, upstream)
    bad = "key-b"
    upstream.script(Fault.status(401, "invalid key"), key=bad)
    moved = {}
    for n in range(CONVERSATIONS):
        chat(client, headers, f"conv-{n}")
        moved[n] = last_key(upstream)
    for n in range(CONVERSATIONS):
        chat(client, headers, f"conv-{n}")
        assert last_key(upstream) == moved[n]
    assert all(moved[n] == home[n] for n in home if home[n] != bad)
    assert all(moved[n] != bad for n in home)
    assert {moved[n] for n in home if home[n] == bad} == {"key-a", "key-c"}       # spread, not piled on one

    upstream.reset()                                              # the key works again and is put back
    app.extensions["gateway"].router.key_health.restore("op:openai#2")
    for n in range(CONVERSATIONS):
        chat(client, headers, f"conv-{n}")
        assert last_key(upstream) == home[n]


def test_a_5xx_key_fails_over_to_the_same_other_key_each_time_and_serves_again_after(gateway, upstream):
    """A 5xx is the model's failure, not the key's: each request still asks the conversation's key first,
    then fails over to the same other key; once the key answers again, it serves the conversation."""
    app, headers = gateway
    client = app.test_client()
    for n in range(CONVERSATIONS):                                # one whose key is not the first configured
        chat(client, headers, f"five-{n}")
        if last_key(upstream) != SECRETS[0]:
            break
    home, conversation = last_key(upstream), f"five-{n}"
    assert home != SECRETS[0]
    upstream.script(Fault.status(503), key=home, times=3)
    tried = []
    for _ in range(3):
        start = len(upstream.requests)
        chat(client, headers, conversation)
        tried.append(tuple(keys_of(upstream, start)))
    assert len(set(tried)) == 1 and tried[0][0] == home and tried[0][1] != home and len(tried[0]) == 2
    chat(client, headers, conversation)
    assert last_key(upstream) == home


def test_claude_codes_session_header_names_the_conversation(gateway, upstream):
    """/v1/messages with X-Claude-Code-Session-Id: one key per session, whatever the prompt."""
    app, headers = gateway
    client = app.test_client()
    chosen = {}
    for turn in range(3):
        for n in range(CONVERSATIONS):
            body = {"model": "claude-x", "max_tokens": 50,
                    "messages": [{"role": "user", "content": f"turn {turn} of {n}"}]}
            response = client.post("/v1/messages", json=body,
                                   headers={**headers, "X-Claude-Code-Session-Id": f"cc-{n}"})
            assert response.status_code == 200, response.get_data(as_text=True)
            assert chosen.setdefault(n, last_key(upstream)) == last_key(upstream)
    assert set(chosen.values()) == set(SECRETS)


@pytest.mark.parametrize("carried_in", ["header", "prompt_cache_key"])
def test_codexs_conversation_id_names_the_conversation(gateway, upstream, carried_in):
    """Codex sends /v1/responses unstored, each turn with a different input, its conversation id in the
    `session_id` header and as `prompt_cache_key` (which survives servers that drop underscored headers)."""
    app, headers = gateway
    client = app.test_client()
    chosen = {}
    for turn in range(3):
        for n in range(CONVERSATIONS):
            conversation = f"0199-codex-{n}"
            extra = {"prompt_cache_key": conversation} if carried_in == "prompt_cache_key" else {}
            response = client.post("/v1/responses", json={"model": "m1", "input": f"turn {turn}", "store": False,
                                                          **extra},
                                   headers={**headers, **({"session_id": conversation} if not extra else {})})
            assert response.status_code == 200, response.get_data(as_text=True)
            assert chosen.setdefault(n, last_key(upstream)) == last_key(upstream)
    assert set(chosen.values()) == set(SECRETS)


def test_a_responses_chain_stays_on_the_key_of_its_first_response(gateway, upstream):
    """Each chain's turns (first one stored, then previous_response_id) go to one key; chains spread."""
    app, headers = gateway
    client = app.test_client()
    chosen = set()
    for n in range(CONVERSATIONS):
        previous, keys = None, []
        for turn in range(3):
            body = {"model": "m1", "input": f"chain {n} turn {turn}",
                    **({"previous_response_id": previous} if previous else {})}
            response = client.post("/v1/responses", json=body, headers=headers)
            assert response.status_code == 200, response.get_data(as_text=True)
            previous = response.get_json()["id"]
            keys.append(last_key(upstream))
        assert len(set(keys)) == 1
        chosen.add(keys[0])
    assert chosen == set(SECRETS)


def test_user_and_the_conversations_opening_name_it_when_nothing_else_does(gateway, upstream):
    """Without a session header, a chat client that resends its history stays on one key as the history
    grows; conversations of other users, or that open differently, spread."""
    app, headers = gateway
    client = app.test_client()
    chosen = set()
    for n in range(CONVERSATIONS):
        history = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": f"question {n}"}]
        keys = []
        for turn in range(3):
            chat(client, headers, messages=history, user=f"user-{n % 4}")
            keys.append(last_key(upstream))
            history = history + [{"role": "assistant", "content": f"answer {turn}"},
                                 {"role": "user", "content": f"follow-up {turn}"}]
        assert len(set(keys)) == 1
        chosen.add(keys[0])
    assert chosen == set(SECRETS)


def test_a_users_own_key_still_comes_before_the_operators(gateway, upstream):
    """Affinity orders only the operator's keys: a key sent in the request header is the one used."""
    app, headers = gateway
    for n in range(6):
        chat(app.test_client(), {**headers, "X-Openai-API-Key": "mine"}, f"s-{n}")
    assert keys_of(upstream) == ["mine"] * 6


def test_claude_code_sends_the_session_header_that_keeps_its_conversation_on_one_key(make_app, upstream, tmp_path):
    """The real Claude Code, with three sessions: every request of a session reaches the key that a request
    carrying X-Claude-Code-Session-Id with that session's id reaches."""
    binary = claude_binary()
    upstream.call_tools = False
    app = make_app(config(upstream))
    key = make_key(app, make_user(app))
    home = tmp_path / "home"
    home.mkdir()
    sessions = [str(uuid.uuid4()) for _ in range(3)]
    with live_server(app) as base:
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_BASE_URL": base, "ANTHROPIC_API_KEY": key,
               "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
        used = []
        for session in sessions:
            start = len(upstream.requests)
            done = subprocess.run([binary, "-p", "say hi", "--model", "claude-x", "--session-id", session], env=env,
                                  cwd=home, capture_output=True, text=True, timeout=120, check=False)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
            used.append(set(keys_of(upstream, start)))
    client = app.test_client()
    for session, keys in zip(sessions, used):
        response = client.post("/v1/messages", json={"model": "claude-x", "max_tokens": 50,
                                                      "messages": [{"role": "user", "content": "hi"}]},
                               headers={"Authorization": f"Bearer {key}", "X-Claude-Code-Session-Id": session})
        assert response.status_code == 200
        assert keys == {last_key(upstream)}
