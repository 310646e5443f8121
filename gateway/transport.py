"""The HTTP transport of upstream calls: one pooled session per worker, and `post`, the call itself.

requests prepares headers and bodies and names the failures; beneath it, urllib3's pools carry the
calls. What requests would redo on every call for settings the gateway never uses (cookie jars, hooks,
merging session and environment settings, preparing the same URL again, finding the pool again,
wrapping the answer) is done once or not at all, and a request leaves in one write.
"""
import functools
import urllib.request
from typing import NamedTuple

import requests
import requests.adapters
import urllib3
import urllib3.connection

from gateway import ssrf


def new_session(pool_size=256, adapter=None, proxies=True):
    """One pooled HTTP session per worker; the router is the only retry loop (max_retries=0).

    Calls go through `post`, which takes from the session only its pools, default
    headers and proxies. The proxy variables (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY, either
    case, as curl reads them) are read here, once, not on every call; `proxies=False` ignores them.
    """
    session = requests.Session()
    if proxies:
        found = urllib.request.getproxies_environment()
        session.proxies = {scheme: found[scheme] for scheme in ("http", "https", "all") if found.get(scheme)}
        if session.proxies and found.get("no"):
            session.proxies["no_proxy"] = found["no"]
    adapter = adapter or UpstreamAdapter(pool_connections=32, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def user_url_session(allowlist):
    """The session for base URLs that users typed in: each connection's address is checked, and no
    proxy is used (behind a proxy the gateway could not see where a connection really went)."""
    return new_session(adapter=ssrf.user_url_adapter(tuple(allowlist), UpstreamAdapter), proxies=False)


def post(session, url, timeout, headers=None, verify=True, params=None, json=None, data=None, files=None):
    """`session.post(url, stream=True, allow_redirects=False)` without what requests spends on each call on
    settings the gateway never uses: cookie jars, hooks, per-call merging of session and environment settings,
    redirect bookkeeping, preparing a URL it prepared before, and wrapping the answer in a Response.

    The session lends its pools (the adapter mounted for the URL's scheme, with its retry setting), its default
    headers and the proxies read at start (`new_session`). No cookie an upstream sets is kept: one
    tenant's call never carries another's. requests checks and encodes headers and body (its PreparedRequest),
    failures are the exceptions requests' adapter raises, and the answer is urllib3's response, unread.
    """
    prepared = requests.PreparedRequest()
    prepared.method = "POST"
    where = _prepared_url(url, tuple(params.items()) if params else None)
    prepared.url = where.url
    prepared.prepare_headers({**session.headers, **(headers or {})})
    prepared.prepare_body(data, files, json)
    if where.auth:                                  # credentials in the URL, sent as requests sends them
        prepared.prepare_auth(where.auth)
    proxies = session.proxies
    if proxies and requests.utils.should_bypass_proxies(url, proxies.get("no_proxy") or ""):
        proxies = {}
    adapter = session.get_adapter(url)
    try:
        pool = adapter.get_connection_with_tls_context(prepared, verify, proxies=proxies)
    except urllib3.exceptions.LocationValueError as exc:
        raise requests.exceptions.InvalidURL(exc, request=prepared) from exc
    adapter.cert_verify(pool, prepared.url, verify, None)
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    try:
        return pool.urlopen("POST", adapter.request_url(prepared, proxies) if proxies else where.path,
                            body=prepared.body, headers=prepared.headers, redirect=False, assert_same_host=False,
                            preload_content=False, decode_content=False, retries=adapter.max_retries,
                            timeout=urllib3.Timeout(connect=connect, read=read),
                            chunked=not (prepared.body is None or "Content-Length" in prepared.headers))
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ClosedPoolError, OSError) as exc:
        raise requests.ConnectionError(exc, request=prepared) from exc
    except urllib3.exceptions.MaxRetryError as exc:     # a connection that could not be made (no retry allowed)
        raise _requests_error(exc.reason, _CONNECT_ERRORS, requests.ConnectionError)(exc, request=prepared) from exc
    except urllib3.exceptions.ProxyError as exc:
        raise requests.exceptions.ProxyError(exc) from exc
    except (urllib3.exceptions.SSLError, urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.InvalidHeader) as exc:
        raise _requests_error(exc, _ERRORS, None)(exc, request=prepared) from exc


def _requests_error(failure, errors_by_cause, otherwise):
    """The requests exception class requests' HTTPAdapter.send raises for a urllib3 `failure`."""
    return next((error for cause, error in errors_by_cause if isinstance(failure, cause)), otherwise)


# The failures as requests' adapter maps them: why a connection could not be made (a refused or unresolvable
# address is a ConnectionError, not a ConnectTimeout), then what went wrong once it was.
_CONNECT_ERRORS = ((urllib3.exceptions.NewConnectionError, requests.ConnectionError),
                   (urllib3.exceptions.ConnectTimeoutError, requests.ConnectTimeout),
                   (urllib3.exceptions.ResponseError, requests.exceptions.RetryError),
                   (urllib3.exceptions.ProxyError, requests.exceptions.ProxyError),
                   (urllib3.exceptions.SSLError, requests.exceptions.SSLError))
_ERRORS = ((urllib3.exceptions.SSLError, requests.exceptions.SSLError),
           (urllib3.exceptions.ReadTimeoutError, requests.ReadTimeout),
           (urllib3.exceptions.InvalidHeader, requests.exceptions.InvalidHeader))


class _Where(NamedTuple):
    url: str            # as requests prepares it
    path: str           # what the request line carries when no proxy is used
    auth: tuple | None  # credentials the URL carries


@functools.lru_cache(maxsize=1024)
def _prepared_url(url, params):
    """A URL (and query `params`, as pairs) prepared once, not on every call: a provider's URLs are few and
    fixed. A URL requests refuses raises on every call."""
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, dict(params) if params else None)
    auth = requests.utils.get_auth_from_url(prepared.url)
    return _Where(prepared.url, prepared.path_url, auth if any(auth) else None)


class _OneWrite:
    """A request's head and its body (bytes of a known length) leave in one write, not two: one system call
    and one packet (one TLS record) instead of two, and the upstream reads the whole request at once."""
    _body_after_head = None

    def request(self, method, url, body=None, headers=None, **options):
        known_length = isinstance(body, bytes) and not options.get("chunked") and \
            any(name.lower() == "content-length" for name in headers or ())
        self._body_after_head = body if known_length else None
        super().request(method, url, None if known_length else body, headers, **options)

    def send(self, data):
        body, self._body_after_head = self._body_after_head, None
        super().send(data if body is None else data + body)


class _OneWriteHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = type("OneWriteHTTPConnection", (_OneWrite, urllib3.connection.HTTPConnection), {})


class _OneWriteHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = type("OneWriteHTTPSConnection", (_OneWrite, urllib3.connection.HTTPSConnection), {})


class UpstreamAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter for the calls a gateway makes again and again: each request leaves in one write
    (`_OneWrite`), and the pool for a URL, TLS setting and proxy is found and set up once, not on every call."""

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _OneWriteHTTPPool, "https": _OneWriteHTTPSPool}
        self._found = {}                       # (URL, verify, proxy, cert) -> its pool
        self._most_found = connections         # as many as the pool manager keeps pools; then started over

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        key = (request.url, verify, requests.utils.select_proxy(request.url, proxies) if proxies else None, cert)
        pool = self._found.get(key)
        if pool is None:
            if len(self._found) >= self._most_found:
                self._found.clear()
            pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
            super().cert_verify(pool, request.url, verify, cert)
            self._found[key] = pool
        return pool

    def cert_verify(self, conn, url, verify, cert):
        """Done once, when the pool was found (get_connection_with_tls_context), not on every call."""
