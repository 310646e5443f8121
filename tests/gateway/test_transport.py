"""The upstream transport (gateway.transport): proxies read from the environment once at
start, NO_PROXY honoured, never a proxy for users' URLs, no cookie kept from one call to the next, URLs
and pools found once yet each call sent where it goes, with its own TLS setting, in one write, never on a
connection the upstream closed, a compressed answer read, a header that could end the request's head
refused, and failures classified by where they happened."""
import contextlib
import datetime
import gzip
import ipaddress
import json
import logging
import socket
import ssl
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway import config as gateway_config, errors, transport
from gateway.errors import UpstreamError
from gateway.providers.base import Target
from gateway.transport import Transport
from gateway.providers.openai_compat import OpenAICompatAdapter
from fake_upstream import Fault, FakeUpstream
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


def call(operators, base_url, key=None, users=None, timeout=(1, 5)):
    """A chat call to `target(base_url, key)` through the `operators` transport (and the `users` one)."""
    return OpenAICompatAdapter(operators, users).complete(target(base_url, key), BODY, timeout)


@contextlib.contextmanager
def serving(handler, tls=None):
    """`handler` served on 127.0.0.1 by a threaded server (over TLS with the `tls` context); yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


ANSWER = (b'{"id": "c", "object": "chat.completion", "created": 0, "model": "m1", "choices": [{"index": 0,'
          b' "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}')


class Answering(BaseHTTPRequestHandler):
    """A chat answer to every POST."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)


def test_proxy_from_the_environment_at_start_carries_operator_calls(environment, upstream):
    """HTTP_PROXY set when the transport is made: the call goes through it (the fake upstream acts as the proxy)."""
    environment.setenv("HTTP_PROXY", upstream.url)
    call(Transport(), "http://upstream.invalid")
    assert upstream.requests[-1].path == "http://upstream.invalid/v1/chat/completions"   # a proxy's absolute form


def test_no_proxy_hosts_are_called_directly(environment, upstream):
    environment.setenv("https_proxy", f"http://127.0.0.1:{free_port()}")    # nothing listens there
    environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    environment.setenv("NO_PROXY", "localhost,127.0.0.0/8")
    call(Transport(), upstream.url)
    assert upstream.requests[-1].path == "/v1/chat/completions"


def test_a_socks_proxy_is_left_out_with_a_warning_not_spoken_to_as_http(environment, upstream, caplog):
    environment.setenv("ALL_PROXY", f"socks5://127.0.0.1:{free_port()}")      # nothing listens there
    with caplog.at_level(logging.WARNING, logger="gateway.transport"):
        operators = Transport()
    call(operators, upstream.url)
    assert upstream.requests[-1].path == "/v1/chat/completions"
    assert "ALL_PROXY is not an http:// proxy (SOCKS is not supported): ignored" in caplog.text


def test_environment_is_read_once_not_per_call(environment, upstream):
    """A variable set after start changes nothing: no environment lookups on each call."""
    operators = Transport()
    environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    call(operators, upstream.url)
    assert upstream.requests[-1].path == "/v1/chat/completions"


def test_users_urls_never_go_through_a_proxy(environment, upstream):
    """Behind a proxy the SSRF guard could not see where a connection went: users' URLs are called directly."""
    environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    users = Transport(allowlist=("127.0.0.1",))
    operators = Transport()
    call(operators, upstream.url, gateway_config.ProviderKey("pk_1", "user-key", base_url=upstream.url + "/v1"), users)
    assert upstream.requests[-1].key == "user-key"
    with pytest.raises(UpstreamError):                  # the operator's transport does use the (dead) proxy
        call(operators, upstream.url)


def test_cookies_an_upstream_sets_are_never_sent_again():
    """One tenant's call must not carry a cookie an upstream handed to another tenant's call."""
    seen = []

    class Handler(Answering):
        """The chat answer, with a cookie set; the Cookie header of each request is kept."""

        def do_POST(self):
            seen.append(self.headers.get("Cookie"))
            super().do_POST()

        def send_response(self, code, message=None):
            super().send_response(code, message)
            self.send_header("Set-Cookie", "session=tenant-a; Path=/")

    with serving(Handler) as port:
        operators = Transport()
        for _ in range(2):
            call(operators, f"http://127.0.0.1:{port}")
    assert seen == [None, None]


def stream_to_the_end(operators, base_url):
    stream = OpenAICompatAdapter(operators).open_stream(target(base_url), {**BODY, "stream": True}, (1, 5))
    chunks = list(stream.chunks)
    stream.close()
    return chunks


def test_a_stream_read_to_its_end_gives_its_connection_back_for_the_next(upstream):
    """A stream stops at its last event, before its body's end (the chunked terminator): that end is read
    too, so the connection goes back to the pool open, and ten streams need one connection, not ten (a
    name lookup and a handshake each)."""
    operators = Transport()
    for _ in range(10):
        assert stream_to_the_end(operators, upstream.url)
    assert upstream.connections == 1


def test_each_url_and_query_goes_where_it_says_though_prepared_once(upstream):
    """URLs are taken apart once and remembered, per URL and query: each call still goes to its own."""
    operators = Transport()
    gemini = f"{upstream.url}/v1beta/models/m1:streamGenerateContent"
    contents = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    for params in ({"alt": "sse"}, None, {"alt": "sse"}):
        operators.post(gemini, (1, 5), json=contents, params=params).close()
    operators.post(f"{upstream.url}/v1/chat/completions", (1, 5), json=BODY).close()
    assert [r.path for r in upstream.requests] == ["/v1beta/models/m1:streamGenerateContent?alt=sse",
                                                   "/v1beta/models/m1:streamGenerateContent",
                                                   "/v1beta/models/m1:streamGenerateContent?alt=sse",
                                                   "/v1/chat/completions"]
    assert upstream.requests[-1].body == BODY


def test_a_refused_connection_is_an_endpoint_never_reached():
    with pytest.raises(UpstreamError) as refused:
        call(Transport(), f"http://127.0.0.1:{free_port()}")
    assert (refused.value.kind, refused.value.endpoint) == (errors.TRANSIENT, True)
    assert "connection failed (ConnectionRefusedError)" in refused.value.message


def test_a_connection_cut_after_the_request_went_out_is_not_the_endpoints_fault(upstream):
    upstream.script(Fault.reset())
    with pytest.raises(UpstreamError) as cut:
        call(Transport(), upstream.url)
    assert (cut.value.kind, cut.value.endpoint) == (errors.TRANSIENT, False)


def test_an_answer_slower_than_the_read_timeout_is_a_timeout(upstream):
    upstream.script(Fault.slow(2))
    with pytest.raises(UpstreamError) as slow:
        call(Transport(), upstream.url, timeout=(1, 0.3))
    assert (slow.value.kind, slow.value.endpoint, slow.value.message) == (errors.TIMEOUT, False, "upstream timed out")


def test_a_transport_keeping_fewer_pools_than_upstreams_still_reaches_each(upstream, monkeypatch):
    """The transport keeps one pool here: each upstream is still called where it is."""
    monkeypatch.setattr(transport, "MOST_POOLS", 1)
    operators = Transport()
    with FakeUpstream() as other:
        for base_url in (upstream.url, other.url, upstream.url):
            assert call(operators, base_url)["choices"]
        assert len(other.requests) == 1
    assert len(upstream.requests) == 2


RAW_ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
              % (len(ANSWER), ANSWER))


def two_calls_to_a_bare_socket(close_after_each):
    """Two calls through one session to an upstream on a bare socket that answers each and, when
    `close_after_each`, then closes the connection without saying so. Returns each request's first
    read and how many connections the upstream accepted."""
    first_reads, accepted = [], []
    hung_up = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        connection = None
        for _ in range(2):
            if connection is None:
                connection = listener.accept()[0]
                accepted.append(connection)
            first_reads.append(connection.recv(65536))
            connection.sendall(RAW_ANSWER)
            if close_after_each:
                connection.close()
                connection = None
                hung_up.set()
        if connection is not None:
            connection.close()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    operators = Transport()
    with listener:
        for _ in range(2):
            assert call(operators, f"http://127.0.0.1:{listener.getsockname()[1]}")["choices"]
            if close_after_each:            # the next call starts once the hang-up is done, as after an idle spell
                assert hung_up.wait(5)
                hung_up.clear()
        server.join(5)
    return first_reads, len(accepted)


def test_the_request_arrives_whole_in_one_read():
    """Head and body leave in one write: the upstream's first read holds the whole request."""
    first_reads, connections = two_calls_to_a_bare_socket(close_after_each=False)
    assert connections == 1                 # a new connection, then the same one again
    for request in first_reads:
        head, _, body = request.partition(b"\r\n\r\n")
        assert json.loads(body)["model"] == "m1"
        assert f"content-length: {len(body)}".encode() in head.lower()


def test_a_kept_alive_connection_is_reused_past_1024_open_descriptors():
    """A busy worker holds more than 1024 descriptors: a kept-alive connection past that number is still
    seen alive and reused (select(2) cannot see past 1024 and would take it as dead: a new connection each call)."""
    resource = pytest.importorskip("resource")
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 1200:
        pytest.skip("this machine allows fewer than 1200 open descriptors")
    held = [socket.socket() for _ in range(1100)]
    try:
        assert two_calls_to_a_bare_socket(close_after_each=False)[1] == 1
    finally:
        for sock in held:
            sock.close()


def test_a_pooled_connection_the_upstream_closed_is_not_reused():
    """The next call sees that the upstream closed its kept-alive connection and opens a new one,
    instead of failing on the dead one."""
    first_reads, connections = two_calls_to_a_bare_socket(close_after_each=True)
    assert (len(first_reads), connections) == (2, 2)


@pytest.fixture
def tls_upstream(tmp_path):
    """An HTTPS upstream on 127.0.0.1 whose certificate only the CA bundle it returns vouches for."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    address = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(address, False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                   .sign(key, hashes.SHA256()))
    bundle, key_file = tmp_path / "ca.pem", tmp_path / "key.pem"
    bundle.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(bundle, key_file)
    with serving(Answering, tls=context) as port:
        yield f"https://127.0.0.1:{port}/v1/chat/completions", str(bundle)


def test_each_call_is_verified_with_its_own_ca_bundle(tls_upstream):
    """Pools are found once per URL and TLS setting: the same URL called with the system's CAs fails the
    handshake (an endpoint never reached), with its CA bundle succeeds, and with the system's CAs fails again."""
    url, bundle = tls_upstream
    adapter = OpenAICompatAdapter(Transport())
    for verify, succeeds in ((True, False), (bundle, True), (True, False), (bundle, True)):
        if succeeds:
            assert adapter._read_json(adapter._post(url, (1, 5), json=BODY, verify=verify))["choices"]
        else:
            with pytest.raises(UpstreamError) as refused:
                adapter._post(url, (1, 5), json=BODY, verify=verify)
            assert (refused.value.kind, refused.value.endpoint) == (errors.TRANSIENT, True)
            assert "(SSLCertVerificationError)" in refused.value.message


class TunnellingProxy(BaseHTTPRequestHandler):
    """An HTTP proxy that only tunnels (CONNECT), and notes each tunnel's target and credentials."""
    tunnels = []

    def log_message(self, *args):
        pass

    def do_CONNECT(self):
        self.tunnels.append((self.path, self.headers.get("Proxy-Authorization")))
        host, port = self.path.rsplit(":", 1)
        with socket.create_connection((host, int(port))) as far:
            self.send_response(200)
            self.end_headers()
            self.wfile.flush()
            relays = [threading.Thread(target=relay, args=pair, daemon=True)
                      for pair in ((self.connection, far), (far, self.connection))]
            for thread in relays:
                thread.start()
            relays[1].join(5)
        self.close_connection = True


def relay(source, sink):
    """Bytes from `source` to `sink` until either side hangs up."""
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)


def test_an_https_upstream_is_reached_through_the_proxy_in_a_tunnel(environment, tls_upstream):
    """HTTPS_PROXY: the call goes through a CONNECT tunnel (with the proxy's credentials), and TLS is
    checked end to end against the upstream's own certificate, not the proxy's."""
    url, bundle = tls_upstream
    TunnellingProxy.tunnels = []
    with serving(TunnellingProxy) as port:
        environment.setenv("HTTPS_PROXY", f"http://gw:secret@127.0.0.1:{port}")
        answer = OpenAICompatAdapter(Transport())._post(url, (1, 5), json=BODY, verify=bundle)
        assert answer.status == 200 and json.loads(b"".join(answer.pieces()))["choices"]
    [(tunnelled_to, credentials)] = TunnellingProxy.tunnels
    assert tunnelled_to == url.split("/")[2]
    assert credentials == "Basic Z3c6c2VjcmV0"          # gw:secret


def test_a_compressed_answer_is_read_decompressed(upstream):
    """The transport asks for gzip or deflate, as requests did, and reads what it asked for."""
    for compress, name in ((gzip.compress, "gzip"), (zlib.compress, "deflate")):
        upstream.reset()
        upstream.script(Fault.answer(compress(ANSWER), headers={"Content-Encoding": name}))
        assert call(Transport(), upstream.url)["choices"][0]["message"]["content"] == "hi"
        assert "gzip" in upstream.requests[-1].headers["accept-encoding"]


def test_a_header_that_could_end_the_head_early_is_refused_and_nothing_is_sent(upstream):
    """A line break in a key would let it add headers, or a request, of its own: the call is refused."""
    with pytest.raises(UpstreamError) as refused:
        call(Transport(), upstream.url, gateway_config.ProviderKey("pk_1", "sk-a\r\nX-Injected: 1"))
    assert refused.value.kind == errors.AUTH
    assert upstream.requests == [] and upstream.connections == 0
