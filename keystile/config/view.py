"""The running configuration as the admin UI and ``GET /keystile/config`` show it: every secret masked.

Masked: the master key, upstream API keys (``sk-…1a2b``, enough to recognise which key it is),
passwords inside database and Redis URLs, every value of a deployment's extra headers (they
often carry tokens), and proxy credentials (only host:port is shown). Nothing else is secret.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from keystile.config.model import Deployment, Settings
from keystile.credentials import mask

HIDDEN = "***"


def url_without_password(url: str | None) -> str | None:
    """``postgresql://user:secret@host/db`` → ``postgresql://user:***@host/db``."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return HIDDEN
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:{HIDDEN}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def deployment_view(deployment: Deployment) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(deployment):
        value = getattr(deployment, f.name)
        if f.name == "api_key":
            value = mask(value) if value else None
        elif f.name == "headers":
            value = {name: HIDDEN for name, _ in value}
        elif f.name == "prices":
            value = asdict(value) if value is not None else None
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def settings_view(settings: Settings, runtime: tuple[Deployment, ...] = ()) -> dict[str, Any]:
    """The whole running configuration, JSON-ready, secrets masked; ``runtime``: models added through the API."""
    upstream = settings.upstream
    proxies = upstream.proxies
    router = asdict(settings.router)
    router["strategies"] = dict(settings.router.strategies)
    router["fallbacks"] = {name: list(targets) for name, targets in settings.router.fallbacks}
    router["context_window_fallbacks"] = {name: list(targets) for name, targets in settings.router.context_window_fallbacks}
    return {
        "source": settings.source,
        "source_format": settings.source_format,
        "master_key": HIDDEN if settings.master_key else None,
        "database_url": url_without_password(settings.database_url),
        "redis_url": url_without_password(settings.redis_url),
        "server": asdict(settings.server),
        "router": router,
        "spend": asdict(settings.spend),
        "upstream": {
            "max_header_bytes": upstream.max_header_bytes,
            "max_body_bytes": upstream.max_body_bytes,
            "ca_bundles": [path for _, path in upstream.ca_bundles],
            "https_proxy": proxies.https.label if proxies.https else None,
            "http_proxy": proxies.http.label if proxies.http else None,
            "no_proxy": list(proxies.no_proxy),
        },
        "default_max_tokens": settings.default_max_tokens,
        "key_cache_ttl": settings.key_cache_ttl,
        "store_outage_grace": settings.store_outage_grace,
        "log_level": settings.log_level,
        "models": [deployment_view(d) for d in settings.deployments],
        "runtime_models": [deployment_view(d) for d in runtime],
        "warnings": list(settings.warnings),
    }
