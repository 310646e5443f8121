"""The routing service's public surface; nothing below this package imports Flask."""
import urllib.request

import requests

from gateway import ssrf
from gateway.catalog import Catalog
from gateway.localstate import LocalState
from gateway.errors import BadRequest, GatewayError, ModelNotFound, StreamInterrupted
from gateway.providers import adapter_for
from gateway.providers.base import UpstreamAdapter
from gateway.router import Router
from gateway.sharedstate import SharedState

__all__ = ["Gateway", "GatewayError", "BadRequest", "ModelNotFound", "StreamInterrupted", "new_session"]


def new_session(pool_size=256, adapter=None, proxies=True):
    """One pooled HTTP session per worker; the router is the only retry loop (max_retries=0).

    Calls go through gateway.providers.base.post, which takes from the session only its pools, default
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


class Gateway:
    """Settings, catalog, adapters and router bundled for one worker process."""

    def __init__(self, settings, session=None, redis_url=None, state_file=None):
        """Circuit breakers and key health are shared with every worker and instance through `redis_url`
        (gateway.sharedstate), else with this instance's workers through `state_file` (gateway.localstate),
        else kept by this worker alone."""
        self.settings = settings
        self.session = session or new_session()
        self.catalog = Catalog(settings)
        families = {p.type for p in settings.providers.values()}
        users_session = user_url_session(settings.user_url_allowlist)
        self.adapters = {family: adapter_for(family, self.session, users_session) for family in families}
        self.shared_state = (SharedState(redis_url) if redis_url else     # `.degraded` while Redis is lost
                             LocalState(state_file) if state_file else None)
        self.router = Router(settings, self.adapters, shared=self.shared_state)
