"""The upstream transport (gateway.providers.base.post): proxies read from the environment once at
start, NO_PROXY honoured, never a proxy for users' URLs, and no cookie kept from one call to the next."""
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from gateway import config as gateway_config, new_session, user_url_session
from gateway.errors import UpstreamError
from gateway.providers.base import Target
from gateway.providers.openai_compat import OpenAICompatAdapter
from helpers import gateway_config as config_for
from servers import free_port

BODY = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def environment(monkeypatch):
    """No proxy variable of the machine running the tests leaks in; the test sets its own."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def target(base_url, key=None):
    """Model m1 of an OpenAI-compatible upstream at `base_url`, with the operator's key unless `key` is given."""
    settings = gateway_config.parse(config_for(SimpleNamespace(url=base_url), ["m1"], keys=("operator-key",)), {})
    provider = settings.providers["openai"]
    return Target(provider, settings.models["m1"], key or provider.keys[0])


def call(session, base_url, key=None, users_session=None):
    """A chat call to `target(base_url, key)`."""
    return OpenAICompatAdapter(session, users_session).complete(target(base_url, key), BODY, (1, 5))


def test_proxy_from_the_environment_at_start_carries_operator_calls(environment, upstream):
    """HTTP_PROXY set when the session is made: the call goes through it (here the fake upstream acts as the proxy)."""
    environment.setenv("HTTP_PROXY", upstream.url)
    session = new_session()
    call(session, "http://upstream.invalid")
    assert upstream.requests[-1].path == "http://upstream.invalid/v1/chat/completions"   # a proxy's absolute form


def test_no_proxy_hosts_are_called_directly(environment, upstream):
    environment.setenv("https_proxy", f"http://127.0.0.1:{free_port()}")    # nothing listens there
    environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    environment.setenv("NO_PROXY", "localhost,127.0.0.0/8")
    call(new_session(), upstream.url)
    assert upstream.requests[-1].path == "/v1/chat/completions"


def test_environment_is_read_once_not_per_call(environment, upstream):
    """A variable set after start changes nothing: no environment lookups on each call."""
    session = new_session()
    environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    call(session, upstream.url)
    assert upstream.requests[-1].path == "/v1/chat/completions"


def test_users_urls_never_go_through_a_proxy(environment, upstream):
    """Behind a proxy the SSRF guard could not see where a connection went: users' URLs are called directly."""
    environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    users = user_url_session(("127.0.0.1",))
    operators = new_session()
    call(operators, upstream.url, gateway_config.ProviderKey("pk_1", "user-key", base_url=upstream.url + "/v1"), users)
    assert upstream.requests[-1].key == "user-key"
    with pytest.raises(UpstreamError):                  # the operator's session does use the (dead) proxy
        call(operators, upstream.url)


def test_cookies_an_upstream_sets_are_never_sent_again():
    """One tenant's call must not carry a cookie an upstream handed to another tenant's call."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers.get("Cookie"))
            answer = (b'{"id": "c", "object": "chat.completion", "created": 0, "model": "m1", "choices": [{"index": 0,'
                      b' "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}')
            self.send_response(200)
            self.send_header("Set-Cookie", "session=tenant-a; Path=/")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        session = new_session()
        for _ in range(2):
            call(session, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [None, None]


def stream_to_the_end(session, base_url):
    stream = OpenAICompatAdapter(session).open_stream(target(base_url), {**BODY, "stream": True}, (1, 5))
    chunks = list(stream.chunks)
    stream.close()
    return chunks


def test_a_stream_read_to_its_end_gives_its_connection_back_for_the_next(upstream, caplog):
    """A stream stops at its last event, before its body's end (the chunked terminator): that end is read
    too, so the connection goes back to the pool open, and ten streams need one connection, not ten (a
    name lookup in gevent's thread pool and a handshake each; urllib3 logs a reconnection as a reset)."""
    session = new_session()
    with caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"):
        for _ in range(10):
            assert stream_to_the_end(session, upstream.url)
    opened = [r.message for r in caplog.records if "Starting new" in r.message or "Resetting dropped" in r.message]
    assert len(opened) == 1, opened
