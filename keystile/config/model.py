"""The validated configuration keystile runs on, whichever file format it came from.

Both the native YAML format and a LiteLLM proxy ``config.yaml`` load into these types; the
rest of the gateway only ever sees them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keystile.accounting.pricing import PriceOverride
from keystile.upstream.proxy import ProxyRules

PROVIDERS = ("anthropic", "openai", "azure", "bedrock", "vertex_ai", "gemini", "mock")

DEFAULT_DATABASE_URL = "sqlite:///keystile.db"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4000
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_HEADER_BYTES = 32 * 1024
DEFAULT_UPSTREAM_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_UPSTREAM_MAX_BODY_BYTES = 64 * 1024 * 1024
ROUTING_STRATEGIES = ("weighted", "least_busy", "latency", "capacity")


def is_pattern(name: str) -> bool:
    """A model name with ``*`` serves every matching name (``claude-*``)."""
    return "*" in name


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """How a ``bedrock`` deployment signs its requests (SigV4); all None: the standard AWS chain."""

    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    profile: str | None = None

    def __repr__(self) -> str:  # the secret must never reach a log line or traceback
        return f"AwsCredentials(profile={self.profile!r}, static={self.access_key_id is not None})"


@dataclass(frozen=True, slots=True)
class VertexTarget:
    """Where a ``vertex_ai`` deployment lives and whose Google credentials it uses."""

    project: str
    location: str
    credentials: str | None = None
    """A service-account JSON file's path, or its JSON text; None: Application Default Credentials."""

    def __repr__(self) -> str:
        return f"VertexTarget({self.project!r}, {self.location!r})"


@dataclass(frozen=True, slots=True)
class Deployment:
    """One upstream endpoint serving a public model name; several form a model group."""

    model_name: str
    """The public name clients send in ``model``."""
    provider: str
    """``anthropic`` | ``openai`` (incl. any OpenAI-compatible server) | ``azure`` | ``bedrock`` |
    ``vertex_ai`` | ``gemini`` | ``mock``."""
    model: str
    """The upstream's model id (for Azure: the deployment name)."""
    id: str = ""
    """Stable identifier shown in headers, logs and /health; defaults to ``<model_name>#<n>``."""
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    forward_client_credentials: bool = False
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    connect_timeout: float | None = None
    timeout: float | None = None
    """Seconds to wait for the upstream's first byte."""
    stream_idle_timeout: float | None = None
    """Seconds allowed between two upstream stream events."""
    max_retries: int | None = None
    tags: tuple[str, ...] = ()
    region: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    """Extra headers sent upstream with every request to this deployment."""
    prices: PriceOverride | None = None
    base_model: str | None = None
    """The model whose price applies when ``model`` is a free-form name (an Azure deployment
    name, a fine-tune): LiteLLM's ``model_info.base_model``, e.g. ``gpt-4o``."""
    wire_format: str | None = None
    """Only for ``mock``: answer in this ``ApiFormat``'s value (``anthropic``, ``openai``, ``gemini``,
    ``bedrock``, ``vertex``); None = the client's."""
    wire_api: str = "chat"
    """OpenAI-type deployments: ``chat`` (``/chat/completions`` only), ``responses`` (``/responses``
    only) or ``both`` (Responses clients go to ``/responses``, the others to ``/chat/completions``)."""
    aws: AwsCredentials | None = None
    """``bedrock`` deployments signed with SigV4 (None with an ``api_key``: a Bedrock API key, sent as Bearer)."""
    vertex: VertexTarget | None = None
    """``vertex_ai`` deployments: project, location, credentials."""
    source_line: int | None = None

    def __repr__(self) -> str:  # api_key must never show up in a log line or traceback
        return f"Deployment({self.id!r}, provider={self.provider!r}, model={self.model!r}, api_base={self.api_base!r})"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    workers: int = 1
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    """Request line + headers, counted while they are read, on every route (431 past it)."""
    header_timeout: float = 30.0
    """Seconds a request line and headers may take to arrive, from the connection's start (or a
    keep-alive request's first byte); a connection that sends nothing is closed after it."""
    body_timeout: float = 30.0
    body_min_rate: int = 500
    """While a body is read, each ``body_timeout`` window must bring ``body_timeout × body_min_rate``
    bytes, or the rest of the body (Apache's ``RequestReadTimeout body=…,MinRate=500``), else 408."""
    keep_alive_timeout: float = 75.0
    """Seconds an idle keep-alive connection stays open: longer than clients' own idle timeouts
    (httpx, under both official Python SDKs, drops idle connections after 5 s; Node's agents after
    4–5 s), so the client closes them and never reuses one the server is closing."""
    max_connections: int = 4096
    """Client connections per worker; lowered to fit the process's file-descriptor limit."""
    graceful_shutdown: float = 30.0
    """On SIGTERM, seconds requests in flight may take to finish before they are cut off."""
    access_log: bool = True
    """One JSON line per request on stderr (``keystile.accesslog``)."""


@dataclass(frozen=True, slots=True)
class RouterSettings:
    strategy: str = "weighted"
    strategies: tuple[tuple[str, str], ...] = ()
    """Per model group overrides of ``strategy``: (model name, strategy)."""
    num_retries: int = 2
    """Retries per request before fallbacks are tried (a deployment may override)."""
    retry_backoff: float = 0.25
    """Base of the exponential backoff between retries, in seconds (with jitter)."""
    retry_after_cap: float = 10.0
    """Longest upstream ``retry-after`` keystile will wait for before retrying."""
    max_retries_cap: int = 5
    """Upper bound for the per-request ``x-keystile-max-retries`` header."""
    client_may_raise_retries: bool = False
    """Whether that header may ask for more retries than the group is configured with
    (up to ``max_retries_cap``); by default it can only lower them."""
    timeout_cap: float = 600.0
    """Upper bound for the per-request ``x-keystile-timeout`` header, in seconds."""
    connect_timeout: float = 10.0
    timeout: float = 600.0
    stream_idle_timeout: float = 300.0
    cooldown_failures: int = 3
    """Failures within ``cooldown_window`` that take a deployment out of rotation."""
    cooldown_window: float = 60.0
    cooldown_seconds: float = 30.0
    fallbacks: tuple[tuple[str, tuple[str, ...]], ...] = ()
    context_window_fallbacks: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def fallbacks_for(self, model_name: str, *, context_window: bool = False) -> tuple[str, ...]:
        table = self.context_window_fallbacks if context_window else self.fallbacks
        for name, targets in table:
            if name == model_name:
                return targets
        return ()


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """Bounds on what an upstream may send back, and how connections to upstreams are made."""

    max_header_bytes: int = DEFAULT_UPSTREAM_MAX_HEADER_BYTES
    """A larger upstream response head is a 502 (it never reaches the client)."""
    max_body_bytes: int = DEFAULT_UPSTREAM_MAX_BODY_BYTES
    """A larger upstream answer read whole (non-streaming, after decompression) is a 502."""
    ca_bundle: str | None = None
    """A PEM file (or directory) of CAs trusted for upstream TLS, besides the system's."""
    ca_bundles: tuple[tuple[str, str], ...] = ()
    """Every bundle to load, as (where it was named, path): ``ca_bundle``, then ``SSL_CERT_FILE``
    and ``REQUESTS_CA_BUNDLE`` from the environment the configuration was read in."""
    proxies: ProxyRules = field(default_factory=ProxyRules)
    """``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` of that environment."""


@dataclass(frozen=True, slots=True)
class SpendSettings:
    flush_interval: float = 1.0
    log_retention: float = 30 * 86400.0
    """Seconds a spend-log row is kept; 0 keeps them forever."""
    log_content: bool = False
    """Store prompts and completions in the spend log (off: only counts and costs)."""
    prices_file: str | None = None


DEFAULT_OTLP_TRACES_ENDPOINT = "http://localhost:4318/v1/traces"


@dataclass(frozen=True, slots=True)
class OtelSettings:
    """OpenTelemetry tracing (``otel:``): off unless enabled; spans go out over OTLP/HTTP (protobuf).

    The endpoint, headers and service name are resolved when the config is read, from the
    section or else the standard ``OTEL_*`` environment variables, so what is shown is what is used.
    """

    enabled: bool = False
    endpoint: str = DEFAULT_OTLP_TRACES_ENDPOINT
    """The full OTLP/HTTP traces URL (``…/v1/traces``)."""
    headers: tuple[tuple[str, str], ...] = ()
    """Sent with every export (a collector's or vendor's token): never shown, never logged."""
    service_name: str = "keystile"
    sample_rate: float = 1.0
    """Share of new traces recorded (0–1); a client's ``traceparent`` decides for the traces it continues."""
    attempt_spans: bool = True
    """A child span per upstream attempt (so a failed attempt and its retry are both visible)."""

    def __repr__(self) -> str:  # header values are credentials
        names = ", ".join(name for name, _ in self.headers)
        return (
            f"OtelSettings(enabled={self.enabled}, endpoint={self.endpoint!r}, headers=[{names}], "
            f"service_name={self.service_name!r}, sample_rate={self.sample_rate}, attempt_spans={self.attempt_spans})"
        )


@dataclass(frozen=True, slots=True)
class Settings:
    deployments: tuple[Deployment, ...] = ()
    master_key: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    server: ServerSettings = field(default_factory=ServerSettings)
    router: RouterSettings = field(default_factory=RouterSettings)
    spend: SpendSettings = field(default_factory=SpendSettings)
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    otel: OtelSettings = field(default_factory=OtelSettings)
    default_max_tokens: int = 4096
    """``max_tokens`` sent to Anthropic when an OpenAI client omits it."""
    key_cache_ttl: float = 60.0
    """Seconds a looked-up key stays cached; changes made through keystile invalidate at once."""
    store_outage_grace: float = 300.0
    """While the database is unreachable, a cached key is still served this long past its cache expiry."""
    log_level: str = "info"
    source: str | None = None
    """Where this configuration was read from (a path, or ``<built-in default>``)."""
    source_format: str = "keystile"
    """``keystile`` or ``litellm``."""
    warnings: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Settings(source={self.source!r}, deployments={len(self.deployments)}, database_url=<hidden>)"

    @property
    def model_names(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for deployment in self.deployments:
            seen.setdefault(deployment.model_name, None)
        return tuple(seen)
