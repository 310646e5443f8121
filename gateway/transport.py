"""The HTTP transport of upstream calls: one `Transport` per worker (and one for users' URLs), whose
`post` is every upstream call the gateway makes.

geventhttpclient carries the calls: its response parser is C (llhttp), its pools are gevent's, and a
request leaves in one write. Its calls cost half the CPU of urllib3's and a fifth of requests' (bench/floor.sh).
What the gateway needs beyond it is here, once: a timeout per call, proxies read from the environment
at start (NO_PROXY honoured), a CA bundle per provider, users' URLs checked at connect (gateway.ssrf),
failures named by where they happened, no cookie kept, no redirect followed.
"""
import base64
import functools
import ipaddress
import logging
import re
import select
import socket
import ssl
import urllib.parse
import urllib.request
import weakref
import zlib
from typing import NamedTuple

import urllib3
from geventhttpclient.connectionpool import ConnectionPool, SSLConnectionPool
from geventhttpclient.response import HTTPParseError, HTTPSocketPoolResponse

from gateway import fastjson, ssrf

POOL_SIZE = 1000            # connections per upstream origin: gunicorn's worker_connections, so none waits
MOST_POOLS = 256            # origins kept; past that the oldest is dropped (users' URLs are many)
BLOCK_SIZE = 65536
USER_AGENT = "llm-gateway"
_UNSAFE_IN_HEADER = re.compile(r"[\r\n\x00]")
log = logging.getLogger(__name__)


class CallFailed(Exception):
    """An upstream call that failed; `reason` is the failure underneath, named in error messages."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason

    @property
    def reason_name(self):
        return type(self.reason).__name__


class NotConnected(CallFailed):
    """No connection was made (refused, unresolvable, the TLS handshake or a proxy failed): the endpoint is down."""


class ConnectTimeout(NotConnected):
    """No connection was made in time."""


class ReadTimeout(CallFailed):
    """Connected, but the answer (or its next piece) did not arrive in time."""


class ConnectionBroke(CallFailed):
    """The connection broke, or the answer was not HTTP, after the request went out: maybe the model's doing."""


class BadHeader(CallFailed):
    """A header the call was to carry has characters HTTP cannot carry; nothing was sent."""


class Transport:
    """The upstream connections of one worker: a pool per origin, TLS setting, connect timeout and proxy.

    `allowlist` not None makes it the transport of users' URLs: every address a connection is about to
    reach is checked (ssrf.check_address, so a name that rebinds inward after the URL was checked is
    refused too), and no proxy is used (behind one the gateway could not see where a connection went).
    """

    def __init__(self, allowlist=None):
        self.allowlist = None if allowlist is None else tuple(allowlist)
        self.proxies, self.no_proxy = _proxies_from_environment() if allowlist is None else ({}, "")
        self._pools = {}

    def post(self, url, timeout, headers=None, verify=True, params=None, json=None, data=None, files=None):
        """POST `json`, form `data` or multipart `files` (with `data` as its fields) to `url`; the answer's
        head is read, its body not. `timeout` is (connect, read) seconds or one for both; `verify` True
        or a CA bundle's path.

        :raise CallFailed: NotConnected, ConnectTimeout, ReadTimeout, ConnectionBroke or BadHeader.
        :raise ssrf.UnsafeURL: a user's URL whose connection would reach a refused address.
        :raise UnicodeEncodeError: a header with characters beyond latin-1 (a key HTTP cannot carry).
        """
        where = _where(url, tuple(params.items()) if params else None)
        body, content_type = _encode(json, data, files)
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        proxy = self._proxy_for(where)
        request = _head(where, proxy, headers, content_type, len(body)) + body
        pool = self._pool(where, verify, connect, proxy)
        sock = pool.get_socket()
        try:
            sock.settimeout(read)
            sock.sendall(request)
        except OSError as exc:
            pool.release_socket(sock)
            raise (ReadTimeout if isinstance(exc, TimeoutError) else ConnectionBroke)(exc) from exc
        try:
            return Answer(sock, pool, block_size=BLOCK_SIZE, method="POST")     # its head read; it lets go of sock
        except TimeoutError as exc:                 # the answer's head did not come in time
            raise ReadTimeout(exc) from exc
        except (OSError, HTTPParseError) as exc:    # the connection broke, or what came back is not HTTP
            raise ConnectionBroke(exc) from exc

    def _proxy_for(self, where):
        proxy = self.proxies.get(where.scheme) or self.proxies.get("all")
        if proxy is None or _bypasses_proxy(where.host, self.no_proxy):
            return None
        return proxy

    def _pool(self, where, verify, connect_timeout, proxy):
        key = (where.scheme, where.host, where.port, verify, connect_timeout, proxy)
        pool = self._pools.get(key)
        if pool is None:
            if len(self._pools) >= MOST_POOLS:
                del self._pools[next(iter(self._pools))]
            pool = self._pools[key] = _new_pool(where, verify, connect_timeout, proxy, self.allowlist)
        return pool


class Answer(HTTPSocketPoolResponse):
    """An upstream's answer: `status`, `header(name)`, then its body as it arrives (`pieces`).

    Read to its end, the connection goes back to its pool; closed before that, it is hung up.
    """

    @property
    def status(self):
        return self.status_code

    def header(self, name):
        """The header's (first) value, or None."""
        values = self._headers_index.getlist(name)
        return values[0] if values else None

    def pieces(self):
        """The body, decoded and decompressed, piece by piece as it arrives (no read-ahead).

        :raise ReadTimeout: nothing arrived within the read timeout.
        :raise ConnectionBroke: the connection broke, or the body is not what its head said.
        """
        decoder = _decoder(self.header("Content-Encoding"))
        try:
            while True:
                if self._body_buffer:
                    piece = bytes(self._body_buffer)
                    del self._body_buffer[:]
                    yield decoder.decompress(piece) if decoder else piece
                elif self.message_complete:
                    if decoder and (rest := decoder.flush()):
                        yield rest
                    return
                elif self._sock is None:
                    raise ConnectionBroke(ConnectionError("the connection was closed before the body's end"))
                else:
                    self.feed(self._sock.recv(self.block_size))    # an end before the body's is a parse error
        except TimeoutError as exc:
            self.release()
            raise ReadTimeout(exc) from exc
        except (OSError, HTTPParseError, zlib.error) as exc:
            self.release()
            raise ConnectionBroke(exc) from exc

    def set_read_timeout(self, seconds):
        """From now on, each wait for the next piece of the body lasts at most `seconds`."""
        if self._sock is not None:
            self._sock.settimeout(seconds)

    def close(self):
        self.release()


class _Where(NamedTuple):
    """A URL taken apart once: where to connect, what the request line and Host header carry."""
    scheme: str
    host: str           # as the connection resolves it (IDNA), without IPv6 brackets
    port: int
    target: str         # path and query, as the request line carries it without a proxy
    url: str            # the whole URL, as the request line carries it through an HTTP proxy
    host_header: str
    authorization: str | None     # from credentials in the URL


@functools.lru_cache(maxsize=1024)
def _where(url, params):
    """A URL (and query `params`, as pairs) taken apart once, not on every call: a provider's URLs are few."""
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {parts.scheme}://{parts.hostname or ''}")
        host = parts.hostname.encode("idna").decode("ascii")
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:                   # UnicodeError too: a name IDNA cannot encode
        raise NotConnected(exc) from None
    query = "&".join(q for q in (parts.query, urllib.parse.urlencode(params, doseq=True) if params else "") if q)
    target = urllib.parse.quote(parts.path or "/", safe="/:@!$&'()*+,;=-._~%") + (f"?{query}" if query else "")
    bracketed = f"[{host}]" if ":" in host else host
    host_header = bracketed if parts.port in (None, 80 if parts.scheme == "http" else 443) else f"{bracketed}:{port}"
    authorization = None
    if parts.username is not None:
        authorization = _basic(urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
    return _Where(parts.scheme, host, port, target, f"{parts.scheme}://{host_header}{target}", host_header,
                  authorization)


def _basic(user, password):
    """The Basic credentials of an Authorization or Proxy-Authorization header."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode("latin-1")).decode("ascii")


def _encode(json, data, files):
    """The body and its Content-Type, as requests would send them."""
    if files:
        fields = list(data.items() if isinstance(data, dict) else data or ()) + list(files.items())
        return urllib3.encode_multipart_formdata(fields)
    if data is not None:
        return urllib.parse.urlencode(data, doseq=True).encode(), "application/x-www-form-urlencoded"
    if json is not None:
        return fastjson.dumps(json), "application/json"
    return b"", None


def _head(where, proxy, headers, content_type, length):
    """The request line and headers, checked: a header value that could end the head early is refused."""
    fields = {"Host": where.host_header, "User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate",
              "Accept": "*/*"}
    if where.authorization:
        fields["Authorization"] = where.authorization
    if content_type:
        fields["Content-Type"] = content_type
    for name, value in (headers or {}).items():
        fields[_canonical(fields, name)] = value
    if proxy is not None and where.scheme == "http" and proxy.authorization:
        fields["Proxy-Authorization"] = proxy.authorization
    fields["Content-Length"] = str(length)
    lines = [f"POST {where.url if proxy is not None and where.scheme == 'http' else where.target} HTTP/1.1"]
    for name, value in fields.items():
        value = str(value)
        if _UNSAFE_IN_HEADER.search(name) or _UNSAFE_IN_HEADER.search(value):
            raise BadHeader(ValueError(f"the {name} header has a line break or a NUL"))
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _canonical(fields, name):
    """`name` as already present in `fields` in another case (header names are case-insensitive), else itself."""
    if name in fields:
        return name
    lowered = name.lower()
    return next((present for present in fields if present.lower() == lowered), name)


def _decoder(encoding):
    """A decompressor for the answer's Content-Encoding (gzip or deflate, as asked), else None."""
    if encoding and encoding.strip().lower() in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(zlib.MAX_WBITS | 32)      # a gzip or a zlib header, told apart by zlib
    return None


class _Proxy(NamedTuple):
    host: str
    port: int
    user: str | None
    password: str | None
    authorization: str | None     # Proxy-Authorization for requests a plain HTTP proxy forwards


def _proxies_from_environment():
    """HTTP_PROXY, HTTPS_PROXY and ALL_PROXY by scheme, and NO_PROXY (either case, as curl reads them), read once."""
    found = urllib.request.getproxies_environment()
    proxies = {}
    for scheme in ("http", "https", "all"):
        if found.get(scheme) and (proxy := _proxy(found[scheme])):
            proxies[scheme] = proxy
        elif found.get(scheme):
            log.warning("%s_PROXY is not an http:// proxy (SOCKS is not supported): ignored", scheme.upper())
    return proxies, found.get("no", "")


def _proxy(url):
    """The proxy at `url`, spoken to in plain HTTP; None for one that is not (SOCKS)."""
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    user = urllib.parse.unquote(parts.username) if parts.username is not None else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    authorization = _basic(user, password or "") if user is not None else None
    return _Proxy(parts.hostname, parts.port or 80, user, password, authorization)


@functools.lru_cache(maxsize=1024)
def _bypasses_proxy(host, no_proxy):
    """NO_PROXY as curl reads it: `*`, host names and their subdomains, addresses and CIDR ranges."""
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*" or host == entry.lstrip(".") or host.endswith("." + entry.lstrip(".")):
            return True
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


class _Checked:
    """A pool whose connections that could not be made raise NotConnected (ConnectTimeout when slow), and,
    for users' URLs (`allowlist` not None), whose every address is checked before it is connected to.

    Its sockets, name lookups and TLS are the standard library's: gevent's in a patched worker, plain
    ones under `flask run` and in tests, where a pooled connection may be used by another thread.
    """
    allowlist = None

    def _resolve(self):
        return socket.getaddrinfo(self._connection_host, self._connection_port, 0, socket.SOCK_STREAM)

    def _create_tcp_socket(self, family, socktype, protocol):
        return socket.socket(family, socktype, protocol)

    def _is_socket_alive(self, sock):
        """A kept-alive connection with nothing to read is alive; one readable (the upstream hung up) is not.
        Asked with poll, not select: select fails on descriptors past 1024, and so took every one as dead."""
        try:
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):           # closed already
            return False

    def _connect_socket(self, sock, address):
        if self.allowlist is not None and self._request_host not in self.allowlist:
            ssrf.check_address(address[0], self._request_host, self.allowlist)
        return super()._connect_socket(sock, address)

    def _create_socket(self):
        try:
            return super()._create_socket()
        except TimeoutError as exc:
            raise ConnectTimeout(exc) from exc
        except (OSError, RuntimeError) as exc:      # refused, unresolvable, TLS; RuntimeError: a proxy's refusal
            raise NotConnected(exc) from exc


class _Pool(_Checked, ConnectionPool):
    pass


class _TLSPool(_Checked, SSLConnectionPool):
    pass


def _new_pool(where, verify, connect_timeout, proxy, allowlist):
    options = dict(size=POOL_SIZE, connection_timeout=connect_timeout, network_timeout=connect_timeout)
    if proxy is not None:
        options.update(use_proxy=True, proxy_user=proxy.user, proxy_password=proxy.password)
    connect_to = (proxy.host, proxy.port) if proxy is not None else (where.host, where.port)
    if where.scheme == "https":
        ssl_options = {} if verify is True else {"ca_certs": verify}
        pool = _TLSPool(*connect_to, where.host, where.port, ssl_options=ssl_options,
                        ssl_context_factory=ssl.create_default_context, **options)
    else:
        pool = _Pool(*connect_to, where.host, where.port, **options)
    pool.allowlist = allowlist
    weakref.finalize(pool, _close_idle, pool._socket_queue)
    return pool


def _close_idle(idle):
    """A pool no one holds any more (a dropped origin, a transport gone) hangs up its kept-alive connections."""
    while not idle.empty():
        idle.get(block=False).close()
