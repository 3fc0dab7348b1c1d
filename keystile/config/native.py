"""keystile's own YAML format (documented in the README's configuration reference)."""

from __future__ import annotations

import importlib.util
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import unquote, urlsplit

from keystile.accounting.pricing import load_price_table
from keystile.config.deployments import DEPLOYMENT_FIELDS, read_deployment
from keystile.config.model import (
    is_pattern,
    DEFAULT_DATABASE_URL,
    PROVIDERS,
    ROUTING_STRATEGIES,
    Deployment,
    OtelSettings,
    RouterSettings,
    ServerSettings,
    Settings,
    SpendSettings,
    UpstreamSettings,
)
from keystile.config.presets import OPENAI_COMPATIBLE
from keystile.config.source import Fields, Source
from keystile.upstream.proxy import ProxyRules
from keystile.upstream.tls import ca_bundles, tls_context

TOP_LEVEL = ("master_key", "database_url", "redis_url", "server", "models", "router", "spend", "upstream", "otel",
             "default_max_tokens", "key_cache_ttl", "store_outage_grace", "log_level")


# What a LiteLLM config may carry under its top-level ``keystile:`` key: everything except the
# models and what LiteLLM's own ``general_settings`` already says.
KEYSTILE_SECTION = tuple(name for name in TOP_LEVEL if name not in ("models", "master_key", "database_url"))


def read_native(source: Source) -> Settings:
    top = Fields(source, source.data, ())
    deployments = tuple(_models(top))
    settings = Settings(
        deployments=deployments,
        master_key=top.string("master_key"),
        database_url=top.string("database_url", DEFAULT_DATABASE_URL) or DEFAULT_DATABASE_URL,
        router=read_router(top.sub("router"), {d.model_name for d in deployments}),
        **read_gateway_settings(top),
    )
    top.warn_unknown(TOP_LEVEL)
    return settings


def read_gateway_settings(f: Fields, *, otel_enabled: bool = False) -> dict[str, Any]:
    """The ``Settings`` fields that are not about models or routing, as keyword arguments.

    The native format reads them from its top level, a LiteLLM config from its ``keystile:`` section
    (``otel_enabled``: LiteLLM's ``callbacks: ["otel"]`` asked for tracing, unless ``otel.enabled`` says otherwise).
    """
    return {
        "redis_url": f.string("redis_url") or None,
        "server": read_server(f.sub("server")),
        "spend": read_spend(f.sub("spend")),
        "upstream": read_upstream(f.sub("upstream")),
        "otel": read_otel(f.sub("otel"), enabled=otel_enabled),
        "default_max_tokens": f.integer("default_max_tokens", 4096, minimum=1) or 4096,
        "key_cache_ttl": f.duration("key_cache_ttl", 60.0) or 60.0,
        "store_outage_grace": _num(f.duration("store_outage_grace", 300.0), 300.0),
        "log_level": f.choice("log_level", ("debug", "info", "warning", "error"), "info"),
    }


def _models(top: Fields) -> list[Deployment]:
    models = top.raw("models")
    if models is None:
        top.source.problem(("models",), "is required: a list of models to serve")
        return []
    if not isinstance(models, list):
        top.source.problem(("models",), "expected a list of models")
        return []
    counts: dict[str, int] = {}
    out = []
    for i, entry in enumerate(models):
        f = Fields(top.source, entry, ("models", i))
        name = f.string("name", required=True)
        provider = f.choice("provider", PROVIDERS + tuple(OPENAI_COMPATIBLE), "mock") if f.has("provider") else None
        if provider is None:
            top.source.problem(("models", i, "provider"), f"is required: one of {', '.join(PROVIDERS)} or an OpenAI-compatible preset")
        model = f.string("model")
        if name and "*" in name and model in (None, "*"):
            model = ""  # a pattern group passes the requested name through
        elif not model:
            model = name
        if not name or not provider or model is None:
            continue
        index = counts.get(name, 0)
        counts[name] = index + 1
        out.append(read_deployment(f, model_name=name, provider=provider, model=model, index=index))
        f.warn_unknown(DEPLOYMENT_FIELDS | {"name", "provider", "model"})
    return out


def read_server(f: Fields) -> ServerSettings:
    d = ServerSettings()
    server = ServerSettings(
        host=f.string("host", d.host) or d.host,
        port=f.integer("port", d.port, minimum=0) or d.port,
        workers=f.integer("workers", d.workers, minimum=1) or 1,
        max_body_bytes=f.integer("max_body_bytes", d.max_body_bytes, minimum=1024) or d.max_body_bytes,
        max_header_bytes=f.integer("max_header_bytes", d.max_header_bytes, minimum=1024) or d.max_header_bytes,
        header_timeout=_positive_duration(f, "header_timeout", d.header_timeout),
        body_timeout=_positive_duration(f, "body_timeout", d.body_timeout),
        body_min_rate=_int(f.integer("body_min_rate", d.body_min_rate, minimum=1), d.body_min_rate),
        keep_alive_timeout=_positive_duration(f, "keep_alive_timeout", d.keep_alive_timeout),
        max_connections=_int(f.integer("max_connections", d.max_connections, minimum=1), d.max_connections),
        graceful_shutdown=_num(f.duration("graceful_shutdown", d.graceful_shutdown), d.graceful_shutdown),
        access_log=f.boolean("access_log", d.access_log),
    )
    f.warn_unknown(tuple(ServerSettings.__dataclass_fields__))
    return server


def _positive_duration(f: Fields, key: str, default: float) -> float:
    """A timeout: a duration longer than zero (0 would close every connection at once)."""
    value = f.duration(key, default)
    if value is None:
        return default
    if value <= 0:
        f.source.problem(f.path + (key,), "must be longer than zero")
        return default
    return value


def read_fallbacks(f: Fields, key: str, model_names: set[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``{primary: [fallback, …]}`` mappings, or LiteLLM's list of one-key mappings."""
    value = f.raw(key)
    if value is None:
        return ()
    items: list[tuple[str, object, tuple]] = []
    if isinstance(value, dict):
        items = [(k, v, f.path + (key, k)) for k, v in value.items()]
    elif isinstance(value, list):
        for i, entry in enumerate(value):
            if isinstance(entry, dict):
                items.extend((k, v, f.path + (key, i, k)) for k, v in entry.items())
            else:
                f.source.problem(f.path + (key, i), "expected a mapping of model name to a list of fallbacks")
    else:
        f.source.problem(f.path + (key,), "expected a mapping of model name to a list of fallbacks")
    out = []
    for primary, targets, path in items:
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            f.source.problem(path, "expected a list of model names")
            continue
        for name in [primary, *targets]:
            if not _served(name, model_names):
                f.source.problem(path, f"unknown model {name!r} (no model name or pattern in this config serves it)")
        out.append((primary, tuple(targets)))
    return tuple(out)


def _served(name: str, model_names: set[str]) -> bool:
    """Is ``name`` a configured model name, or one a pattern (``claude-*``) serves?"""
    return name in model_names or any(is_pattern(n) and fnmatchcase(name, n) for n in model_names)


def read_strategies(f: Fields, model_names: set[str]) -> tuple[tuple[str, str], ...]:
    """``{model name: strategy}``: a routing strategy for one model group, overriding ``strategy``."""
    out = []
    for name in f.data:
        if name not in model_names:
            f.source.problem(f.path + (name,), f"unknown model {name!r} (not a model name in this config)")
        out.append((name, f.choice(name, ROUTING_STRATEGIES, RouterSettings().strategy)))
    return tuple(out)


def read_router(f: Fields, model_names: set[str]) -> RouterSettings:
    d = RouterSettings()
    router = RouterSettings(
        strategy=f.choice("strategy", ROUTING_STRATEGIES, d.strategy),
        strategies=read_strategies(f.sub("strategies"), model_names),
        num_retries=_int(f.integer("num_retries", f.integer("retries", d.num_retries)), d.num_retries),
        retry_backoff=_num(f.duration("retry_backoff", d.retry_backoff), d.retry_backoff),
        retry_after_cap=_num(f.duration("retry_after_cap", d.retry_after_cap), d.retry_after_cap),
        max_retries_cap=_int(f.integer("max_retries_cap", d.max_retries_cap), d.max_retries_cap),
        client_may_raise_retries=f.boolean("client_may_raise_retries", d.client_may_raise_retries),
        timeout_cap=_num(f.duration("timeout_cap", d.timeout_cap), d.timeout_cap),
        connect_timeout=_num(f.duration("connect_timeout", d.connect_timeout), d.connect_timeout),
        timeout=_num(f.duration("timeout", d.timeout), d.timeout),
        stream_idle_timeout=_num(f.duration("stream_idle_timeout", d.stream_idle_timeout), d.stream_idle_timeout),
        cooldown_failures=_int(f.integer("cooldown_failures", d.cooldown_failures, minimum=1), d.cooldown_failures),
        cooldown_window=_num(f.duration("cooldown_window", d.cooldown_window), d.cooldown_window),
        cooldown_seconds=_num(f.duration("cooldown_seconds", d.cooldown_seconds), d.cooldown_seconds),
        fallbacks=read_fallbacks(f, "fallbacks", model_names),
        context_window_fallbacks=read_fallbacks(f, "context_window_fallbacks", model_names),
    )
    f.warn_unknown(tuple(RouterSettings.__dataclass_fields__) + ("retries",))
    return router


def read_spend(f: Fields) -> SpendSettings:
    d = SpendSettings()
    prices_file = f.string("prices_file")
    if prices_file is not None:
        # Read now, so `keystile config check` reports a missing or malformed table rather
        # than the server failing to start on it.
        try:
            load_price_table(prices_file)
        except (OSError, ValueError) as exc:
            f.source.problem(f.path + ("prices_file",), f"cannot read this price table: {exc}")
    spend = SpendSettings(
        flush_interval=_num(f.duration("flush_interval", d.flush_interval), d.flush_interval),
        log_retention=_num(f.duration("log_retention", d.log_retention), d.log_retention),
        log_content=f.boolean("log_content", d.log_content),
        prices_file=prices_file,
    )
    f.warn_unknown(("flush_interval", "log_retention", "log_content", "prices_file"))
    return spend


def read_upstream(f: Fields) -> UpstreamSettings:
    """The ``upstream:`` section, with the proxy and CA variables of the environment it is read in.

    A CA bundle that cannot be loaded, or a proxy URL keystile cannot use, is a problem now
    (``keystile config check`` shows it; ``serve`` does not start) rather than at the first request.
    """
    d = UpstreamSettings()
    ca_bundle = f.string("ca_bundle") or None
    source = f.source
    bundles = tuple(ca_bundles(ca_bundle, source.env))
    for origin, path in bundles:
        try:
            tls_context([(origin, path)])
        except ValueError as exc:
            if origin == "upstream.ca_bundle":
                source.problem(f.path + ("ca_bundle",), str(exc).removeprefix("upstream.ca_bundle: "))
            else:
                source.problems.append(f"environment: {exc}")
    try:
        proxies = ProxyRules.from_environment(source.env)
    except ValueError as exc:
        source.problems.append(f"environment: {exc}")
        proxies = ProxyRules()
    upstream = UpstreamSettings(
        max_header_bytes=_int(f.integer("max_header_bytes", d.max_header_bytes, minimum=1024), d.max_header_bytes),
        max_body_bytes=_int(f.integer("max_body_bytes", d.max_body_bytes, minimum=1024), d.max_body_bytes),
        ca_bundle=ca_bundle,
        ca_bundles=bundles,
        proxies=proxies,
    )
    f.warn_unknown(("max_header_bytes", "max_body_bytes", "ca_bundle"))
    return upstream


OTEL_EXTRA = "pip install 'keystile[otel]'"
_TRACES_PATH = "/v1/traces"
_OTEL_FIELDS = ("enabled", "endpoint", "traces_endpoint", "headers", "service_name", "sample_rate", "attempt_spans")


def read_otel(f: Fields, *, enabled: bool = False) -> OtelSettings:
    """``otel:``; what it leaves out comes from the standard ``OTEL_*`` environment variables
    (and LiteLLM's ``OTEL_ENDPOINT`` / ``OTEL_HEADERS``), read here so the settings say what is used."""
    d = OtelSettings()
    env = f.source.env
    enabled = f.boolean("enabled", enabled)
    traces_endpoint = f.string("traces_endpoint")
    endpoint = f.string("endpoint")
    where = f.path + (("traces_endpoint",) if traces_endpoint else ("endpoint",))
    if traces_endpoint is None and endpoint is not None:
        traces_endpoint = _traces_url(endpoint)
    if traces_endpoint is None:
        traces_endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or None
    if traces_endpoint is None:
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_ENDPOINT")
        traces_endpoint = _traces_url(base) if base else d.endpoint
    written = f.has("endpoint") or f.has("traces_endpoint")  # a variable meant for other programs matters only when on
    if (enabled or written) and (urlsplit(traces_endpoint).scheme not in ("http", "https") or not urlsplit(traces_endpoint).netloc):
        f.source.problem(where, f"the OTLP endpoint must be an http:// or https:// URL, got {traces_endpoint[:200]!r}")
    headers = _env_headers(
        env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS") or env.get("OTEL_HEADERS") or ""
    )
    configured = f.sub("headers")
    for name in configured.data:
        value = configured.string(name)
        if value is not None:
            headers[name.strip().lower()] = value
    rate = f.number("sample_rate", d.sample_rate)
    if rate is None or rate > 1:
        f.source.problem(f.path + ("sample_rate",), f"must be between 0 and 1, got {rate}")
        rate = d.sample_rate
    otel = OtelSettings(
        enabled=enabled,
        endpoint=traces_endpoint,
        headers=tuple(headers.items()),
        service_name=f.string("service_name") or env.get("OTEL_SERVICE_NAME") or d.service_name,
        sample_rate=rate,
        attempt_spans=f.boolean("attempt_spans", d.attempt_spans),
    )
    f.warn_unknown(_OTEL_FIELDS)
    if enabled:
        _check_otel_installed(f)
        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        if protocol and protocol != "http/protobuf":
            f.source.warn(
                f.path,
                f"keystile exports spans over OTLP http/protobuf only; OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is ignored "
                "(point the endpoint at the collector's OTLP/HTTP port, usually 4318)",
            )
    return otel


def _traces_url(base: str) -> str:
    """An OTLP base URL (as ``OTEL_EXPORTER_OTLP_ENDPOINT``) → its traces URL; one that already ends
    in ``/v1/traces`` is kept (a common way of writing it, which LiteLLM accepts too)."""
    base = base.strip().rstrip("/")
    return base if base.endswith(_TRACES_PATH) else base + _TRACES_PATH


def _env_headers(raw: str) -> dict[str, str]:
    """``name=value,name2=value2`` (values URL-encoded), the OTLP exporter's header variable format."""
    out: dict[str, str] = {}
    for item in raw.split(","):
        name, sep, value = item.partition("=")
        if sep and name.strip():
            out[unquote(name.strip()).lower()] = unquote(value.strip())
    return out


def _check_otel_installed(f: Fields) -> None:
    """Tracing is on: the SDK and the OTLP exporter must be importable (looked up, not imported)."""
    for module in ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            f.source.problem(
                f.path + ("enabled",),
                f"tracing is on but the OpenTelemetry SDK and OTLP exporter are not installed ({module} is missing): "
                f"{OTEL_EXTRA}",
            )
            return


def _int(value: int | None, default: int) -> int:
    return default if value is None else value


def _num(value: float | None, default: float) -> float:
    return default if value is None else value
