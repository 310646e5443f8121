"""The routing service's public surface; nothing below this package imports Flask."""
from gateway.catalog import Catalog
from gateway.localstate import LocalState
from gateway.errors import BadRequest, GatewayError, ModelNotFound, StreamInterrupted
from gateway.providers import adapter_for
from gateway.router import Router
from gateway.sharedstate import SharedState
from gateway.transport import Transport

__all__ = ["Gateway", "GatewayError", "BadRequest", "ModelNotFound", "StreamInterrupted", "Transport"]


class Gateway:
    """Settings, catalog, adapters and router bundled for one worker process."""

    def __init__(self, settings, transport=None, redis_url=None, state_file=None):
        """Circuit breakers and key health are shared with every worker and instance through `redis_url`
        (gateway.sharedstate), else with this instance's workers through `state_file` (gateway.localstate),
        else kept by this worker alone."""
        self.settings = settings
        self.transport = transport or Transport()
        self.catalog = Catalog(settings)
        families = {p.type for p in settings.providers.values()}
        users_transport = Transport(allowlist=settings.user_url_allowlist)
        self.adapters = {family: adapter_for(family, self.transport, users_transport) for family in families}
        self.shared_state = (SharedState(redis_url) if redis_url else     # `.degraded` while Redis is lost
                             LocalState(state_file) if state_file else None)
        self.router = Router(settings, self.adapters, shared=self.shared_state)
