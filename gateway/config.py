"""Loads and validates the operator's TOML configuration into immutable settings.

Every error names the field that is wrong, so a typo fails at start with a clear message
instead of surfacing as a confusing upstream error on the first request.
"""
import hashlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property

FAMILIES = ("openai", "anthropic", "gemini", "gigachat", "demo")
DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "gigachat": "https://gigachat.devices.sberbank.ru/api/v1",
    "demo": "",
}
DEFAULT_AUTH_URLS = {"gigachat": "https://ngw.devices.sberbank.ru:9443/api/v2/oauth"}
DEFAULT_SCOPES = {"gigachat": "GIGACHAT_API_PERS"}
RESPONSES_MODES = ("translate", "native")    # how an openai provider serves /v1/responses
KEY_ORDERS = ("priority", "affinity")        # the operator's keys in file order, or per conversation
KINDS = ("chat", "embedding", "moderation", "image", "speech", "transcription", "rerank")   # a model's endpoints
_NOT_HEADER_TEXT = re.compile("[^\x20-\x7e\xa0-\xff]")   # outside printable Latin-1


class ConfigError(ValueError):
    """The configuration file or environment is invalid; the message names the field."""


def header_safe(secret):
    """Whether a key can travel in an HTTP header: printable Latin-1 only ("ключ" or a newline cannot)."""
    return not _NOT_HEADER_TEXT.search(secret)


@dataclass(frozen=True)
class RoutingSettings:
    cross_group_fallback: bool = True
    ttft_timeout_s: float = 15.0
    stream_idle_timeout_s: float = 30.0
    request_timeout_s: float = 120.0
    connect_timeout_s: float = 5.0


@dataclass(frozen=True)
class RetrySettings:
    max_attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0
    exponential_base: float = 2.0
    jitter: bool = True
    key_cooldown_s: float = 60.0


@dataclass(frozen=True)
class BreakerSettings:
    failure_threshold: int = 5
    recovery_timeout: float = 60.0
    distinct_callers: int = 2     # a shared circuit opens only on failures seen by this many users


@dataclass(frozen=True)
class LimitSettings:
    """Requests allowed per moving window (SPEC section 6); 0 turns a limit off."""
    user_per_minute: int = 60
    global_per_hour: int = 1000
    ip_per_minute: int = 60       # unauthenticated routes: login, register, /health
    key_per_minute: int = 0       # a key's own `rpm` overrides it


@dataclass(frozen=True)
class RetentionSettings:
    """Days each log keeps its rows (SPEC 8); 0 keeps them for ever."""
    request_logs_days: int = 90
    activity_logs_days: int = 365
    reservations_days: int = 7    # settled and released holds; a held one is never pruned
    stored_responses_days: int = 30   # /v1/responses kept for previous_response_id (OpenAI keeps 30 days)


@dataclass(frozen=True)
class ProviderKey:
    """A provider key: `id` is a non-secret label safe for logs, `secret` never leaves memory.

    `scope` names the key's remembered health (cooldowns, circuits): an identity that is never
    reused for another key, so no key inherits another's failures. None: nothing is remembered
    beyond the request. An `exclusive` key (one the caller sent) is never replaced by another.
    """
    id: str
    secret: str = field(repr=False)
    base_url: str | None = None   # a user's own endpoint for this provider (SSRF-checked), else the provider's
    scope: str | None = None
    exclusive: bool = False

    @cached_property
    def fingerprint(self):
        """A short one-way digest of the secret and endpoint: names caches without holding the secret."""
        return hashlib.sha256(f"{self.secret}\0{self.base_url or ''}".encode("utf-8", "surrogatepass")).hexdigest()[:24]


@dataclass(frozen=True)
class ProviderSettings:
    name: str
    type: str
    base_url: str
    keys: tuple = ()
    key_header: str = ""
    headers: tuple = ()           # extra (name, value) pairs sent upstream, e.g. anthropic-version
    enabled: bool = True
    ca_bundle: str | None = None  # a CA file to verify the upstream with (GigaChat's Russian CA), never "off"
    auth_url: str = ""            # GigaChat: the OAuth token endpoint
    scope: str = ""               # GigaChat: the OAuth scope
    responses: str = "translate"  # openai family: "native" sends /v1/responses to the upstream's own /responses
    key_order: str = "priority"   # "affinity": each conversation keeps to one healthy key (gateway/affinity.py)


@dataclass(frozen=True)
class ModelSettings:
    id: str
    provider: str
    upstream_name: str
    kind: str = "chat"            # one of KINDS: which endpoints the model serves
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    per_request: float = 0.0
    per_image: float = 0.0                # USD per generated image (kind = "image")
    cache_read_per_mtok: float = 0.0      # cached input read; the loader defaults it to input_per_mtok
    cache_write_per_mtok: float = 0.0     # input written to a prompt cache; likewise
    group: str | None = None
    owned_by: str = ""


@dataclass(frozen=True)
class GatewaySettings:
    routing: RoutingSettings
    retry: RetrySettings
    breaker: BreakerSettings
    providers: dict
    models: dict                  # id -> ModelSettings, in file order
    groups: dict                  # name -> tuple of model ids, in file order
    price_groups: dict = field(default_factory=lambda: {"default": 1.0})   # key group -> price ratio
    user_url_allowlist: tuple = ()   # hosts / CIDRs users' base URLs may reach despite the SSRF guard
    cors_origins: tuple = ()         # browser origins that may call the API routes ("*": any; never with cookies)
    limits: LimitSettings = LimitSettings()
    retention: RetentionSettings = RetentionSettings()


_DEMO_MODELS = {
    "demo-chat": {"provider": "demo", "upstream_name": "demo-chat"},
    "demo-mini": {"provider": "demo", "upstream_name": "demo-mini"},
    "demo-embed": {"provider": "demo", "upstream_name": "demo-embed", "kind": "embedding"},
}
_DEMO_GROUPS = {"demo": ("demo-chat", "demo-mini")}


def load(path=None, environ=None):
    """Read the TOML file at `path` (a missing file means the demo provider only)."""
    environ = os.environ if environ is None else environ
    data = {}
    if path and os.path.exists(path):
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, environ)


def parse(data, environ):
    """Validate a decoded TOML mapping; raises ConfigError naming the bad field.

    With no `[providers]` the demo provider is the whole catalog (a fresh install can chat at
    once). Otherwise the demo models are added ungrouped, so real traffic never falls back to
    canned answers; `[demo] enabled = false` removes them.
    """
    _expect_table(data, "configuration")
    demo = data.get("demo", {})
    _expect_table(demo, "[demo]")
    demo_enabled = demo.get("enabled", True)
    if not isinstance(demo_enabled, bool):
        raise ConfigError("[demo] enabled: must be true or false")
    configured = "providers" in data
    providers = _parse_providers(data.get("providers", {}), environ)
    if demo_enabled and "demo" not in providers:
        providers["demo"] = _parse_provider("demo", {"type": "demo"}, environ)
    models = _parse_models(data.get("models", {}), providers)
    if demo_enabled and providers["demo"].type == "demo":
        models.update(_parse_models({k: v for k, v in _DEMO_MODELS.items() if k not in models}, providers))
    groups = _parse_groups(data.get("groups", {}), models)
    if demo_enabled and not configured:
        groups.update(_DEMO_GROUPS)
    models = {mid: _with_group(m, groups) for mid, m in models.items()}
    return GatewaySettings(
        routing=_section(RoutingSettings, data, "routing"),
        retry=_section(RetrySettings, data, "retry"),
        breaker=_section(BreakerSettings, data, "circuit_breaker"),
        providers=providers, models=models, groups=groups, price_groups=_parse_price_groups(data.get("price_groups", {})),
        user_url_allowlist=_parse_allowlist(data.get("security", {})),
        cors_origins=_parse_cors_origins(data.get("security", {})),
        limits=_section(LimitSettings, data, "limits"),
        retention=_section(RetentionSettings, data, "retention"),
    )


def _expect_table(value, where):
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a table")


def _section(cls, data, name):
    """Build a flat settings dataclass, checking names and types against its defaults."""
    table = data.get(name, {})
    _expect_table(table, f"[{name}]")
    defaults = cls()
    values = {}
    for key, value in table.items():
        if not hasattr(defaults, key):
            raise ConfigError(f"[{name}] {key}: unknown setting")
        expected = type(getattr(defaults, key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"[{name}] {key}: must be {expected.__name__}, got {value!r}")
        if expected in (int, float) and value < 0:
            raise ConfigError(f"[{name}] {key}: must not be negative")
        values[key] = value
    settings = cls(**values)
    if getattr(settings, "max_attempts", 1) < 1 or getattr(settings, "failure_threshold", 1) < 1:
        raise ConfigError(f"[{name}]: max_attempts and failure_threshold must be at least 1")
    return settings


def _parse_providers(table, environ):
    _expect_table(table, "[providers]")
    return {name: _parse_provider(name, spec, environ) for name, spec in table.items()}


def _parse_provider(name, spec, environ):
    where = f"[providers.{name}]"
    _expect_table(spec, where)
    allowed = {"type", "base_url", "api_keys", "key_header", "headers", "enabled", "ca_bundle", "auth_url", "scope",
               "responses", "key_order"}
    for key in spec:
        if key not in allowed:
            raise ConfigError(f"{where} {key}: unknown setting")
    family = spec.get("type", "openai")
    if family not in FAMILIES:
        raise ConfigError(f"{where} type: must be one of {', '.join(FAMILIES)} (got {family!r})")
    base_url = spec.get("base_url", DEFAULT_BASE_URLS[family])
    if family != "demo" and not (isinstance(base_url, str) and base_url.startswith(("http://", "https://"))):
        raise ConfigError(f"{where} base_url: must be an http(s) URL (got {base_url!r})")
    raw_keys = spec.get("api_keys", [])
    if not isinstance(raw_keys, list) or not all(isinstance(k, str) for k in raw_keys):
        raise ConfigError(f"{where} api_keys: must be a list of strings")
    keys = tuple(_resolve_key(name, i, raw, environ, where) for i, raw in enumerate(raw_keys))
    headers = spec.get("headers", {})
    _expect_table(headers, f"{where} headers")
    ca_bundle = spec.get("ca_bundle")
    if ca_bundle is not None and not (isinstance(ca_bundle, str) and os.path.isfile(ca_bundle)):
        raise ConfigError(f"{where} ca_bundle: must be the path of an existing CA file (got {ca_bundle!r})")
    auth_url = spec.get("auth_url", DEFAULT_AUTH_URLS.get(family, ""))
    if auth_url and not (isinstance(auth_url, str) and auth_url.startswith(("http://", "https://"))):
        raise ConfigError(f"{where} auth_url: must be an http(s) URL (got {auth_url!r})")
    responses = spec.get("responses", "translate")
    if responses not in RESPONSES_MODES:
        raise ConfigError(f"{where} responses: must be one of {', '.join(RESPONSES_MODES)} (got {responses!r})")
    if responses == "native" and family != "openai":
        raise ConfigError(f"{where} responses: \"native\" is for the openai family only (this one is {family})")
    key_order = spec.get("key_order", "priority")
    if key_order not in KEY_ORDERS:
        raise ConfigError(f"{where} key_order: must be one of {', '.join(KEY_ORDERS)} (got {key_order!r})")
    return ProviderSettings(
        name=name, type=family, base_url=base_url.rstrip("/"), keys=tuple(k for k in keys if k),
        key_header=spec.get("key_header", f"X-{name.capitalize()}-API-Key"),
        headers=tuple((str(k), str(v)) for k, v in headers.items()),
        enabled=bool(spec.get("enabled", True)), ca_bundle=ca_bundle, auth_url=auth_url,
        scope=str(spec.get("scope", DEFAULT_SCOPES.get(family, ""))), responses=responses,
        key_order=key_order,
    )


def _resolve_key(provider, index, raw, environ, where):
    """`env:NAME` reads the environment; an unset variable drops the key (the provider may have others)."""
    secret = environ.get(raw[4:], "") if raw.startswith("env:") else raw
    if raw.startswith("env:") and not secret:
        return None
    if not secret:
        raise ConfigError(f"{where} api_keys[{index}]: empty key")
    if not header_safe(secret):
        source = f" ({raw})" if raw.startswith("env:") else ""
        raise ConfigError(f"{where} api_keys[{index}]{source}: the key has characters an HTTP header cannot carry "
                          "(only printable Latin-1: no Cyrillic, no newline or other control character)")
    return ProviderKey(id=f"{provider}#{index + 1}", secret=secret, scope=f"op:{provider}#{index + 1}")


def _parse_models(table, providers):
    _expect_table(table, "[models]")
    models = {}
    for model_id, spec in table.items():
        where = f'[models."{model_id}"]'
        _expect_table(spec, where)
        provider = spec.get("provider")
        if provider not in providers:
            raise ConfigError(f"{where} provider: {provider!r} is not a configured provider")
        kind = spec.get("kind", "chat")
        if kind not in KINDS:
            raise ConfigError(f"{where} kind: must be one of {', '.join(KINDS)}")
        prices = {}
        for key in ("input_per_mtok", "output_per_mtok", "per_request", "per_image", "cache_read_per_mtok", "cache_write_per_mtok"):
            value = spec.get(key, spec.get("input_per_mtok", 0.0) if key.startswith("cache_") else 0.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{where} {key}: must be a non-negative number")
            prices[key] = float(value)
        unknown = set(spec) - {"provider", "upstream_name", "kind", "owned_by", *prices}
        if unknown:
            raise ConfigError(f"{where} {sorted(unknown)[0]}: unknown setting")
        models[model_id] = ModelSettings(
            id=model_id, provider=provider, upstream_name=str(spec.get("upstream_name", model_id)),
            kind=kind, owned_by=str(spec.get("owned_by", provider)), **prices,
        )
    return models


def _parse_groups(table, models):
    _expect_table(table, "[groups]")
    groups = {}
    for name, members in table.items():
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ConfigError(f"[groups] {name}: must be a list of model ids")
        for member in members:
            if member not in models:
                raise ConfigError(f"[groups] {name}: {member!r} is not a configured model")
        groups[name] = tuple(members)
    return groups


def _parse_price_groups(table):
    """`[price_groups] vip = 0.8`: every price times the ratio of the key's group (`default` is 1)."""
    _expect_table(table, "[price_groups]")
    ratios = {"default": 1.0}
    for name, ratio in table.items():
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio < 0:
            raise ConfigError(f"[price_groups] {name}: must be a non-negative number")
        ratios[name] = float(ratio)
    return ratios


def _parse_allowlist(table):
    """`[security] user_url_allowlist = ["10.0.0.0/8", "llm.internal"]`."""
    _expect_table(table, "[security]")
    unknown = set(table) - {"user_url_allowlist", "cors_origins"}
    if unknown:
        raise ConfigError(f"[security] {sorted(unknown)[0]}: unknown setting")
    entries = table.get("user_url_allowlist", [])
    if not isinstance(entries, list) or not all(isinstance(e, str) and e for e in entries):
        raise ConfigError("[security] user_url_allowlist: must be a list of host names or CIDR ranges")
    return tuple(entries)


def _parse_cors_origins(table):
    """`[security] cors_origins = ["https://app.example.com"]` (scheme://host[:port], no path) or `["*"]`."""
    origins = table.get("cors_origins", [])
    if not isinstance(origins, list) or not all(
            isinstance(o, str) and (o == "*" or re.fullmatch(r"https?://[^/\s]+", o)) for o in origins):
        raise ConfigError('[security] cors_origins: must be a list of origins ("https://app.example.com") or ["*"]')
    return tuple(origins)


def _with_group(model, groups):
    for name, members in groups.items():
        if model.id in members:
            return ModelSettings(**{**model.__dict__, "group": name})
    return model
