"""Reading one deployment's settings, shared by the native format and LiteLLM's ``litellm_params``.

Native names follow LiteLLM's where both have the concept (``api_base``, ``api_key``, ``rpm``,
``input_cost_per_token`` …) so a deployment reads the same in either file; LiteLLM's other
spellings (``stream_timeout``, ``extra_headers``, ``region_name``) are accepted too.
"""

from __future__ import annotations

from keystile.config.clouds import CLOUD_FIELDS, CloudTarget, bedrock_target, gemini_target, vertex_target
from keystile.config.model import Deployment, PriceOverride
from keystile.config.presets import OPENAI_COMPATIBLE, openai_base_url
from keystile.config.source import Fields

# Where each provider lives when the config does not say, and which variable holds its key.
DEFAULT_API_BASE = {
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com/v1",
}
DEFAULT_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY", "azure": "AZURE_API_KEY"}
DEFAULT_AZURE_API_VERSION = "2024-10-21"
WIRE_APIS = ("chat", "responses", "both")

DEPLOYMENT_FIELDS = frozenset(
    {
        "api_base", "api_key", "api_version", "forward_client_credentials", "weight", "rpm", "tpm",
        "connect_timeout", "timeout", "stream_timeout", "stream_idle_timeout", "max_retries", "tags",
        "region", "region_name", "headers", "extra_headers", "input_cost_per_token",
        "output_cost_per_token", "cache_creation_input_token_cost", "cache_read_input_token_cost",
        "format", "id", "base_model", "wire_api",
    }
) | CLOUD_FIELDS
MOCK_FORMATS = ("auto", "anthropic", "openai", "gemini", "bedrock", "vertex")
_CLOUD_TARGETS = {"bedrock": bedrock_target, "gemini": gemini_target}


def read_deployment(f: Fields, *, model_name: str, provider: str, model: str, index: int) -> Deployment:
    """Build a deployment from the shared fields of ``f``; problems go to ``f.source``.

    ``provider`` may name an OpenAI-compatible preset (``groq``, ``ollama`` …), which becomes
    an ``openai`` deployment with the preset's base URL and key variable.
    """
    source = f.source
    named = provider
    preset = OPENAI_COMPATIBLE.get(provider)
    key_env = DEFAULT_KEY_ENV.get(provider)
    if preset is not None:
        provider, key_env = "openai", preset.key_env
    cloud: CloudTarget | None = None
    if provider == "vertex_ai":
        cloud = vertex_target(f)
    elif provider in _CLOUD_TARGETS:
        cloud = _CLOUD_TARGETS[provider](f, model)
    api_base = f.string("api_base")
    if cloud is not None:
        api_base = cloud.api_base
    elif api_base is not None:
        api_base = api_base.rstrip("/")
        if not api_base.startswith(("http://", "https://")):
            source.problem(f.path + ("api_base",), f"must start with http:// or https://, got {api_base!r}")
        if provider == "anthropic":
            # keystile appends /v1/messages itself; LiteLLM also takes the whole endpoint URL
            api_base = api_base.removesuffix("/v1/messages").removesuffix("/v1")
        elif provider == "openai":
            api_base = openai_base_url(named, api_base)
    elif provider == "azure":
        source.problem(f.path + ("api_base",), "is required for azure (https://<resource>.openai.azure.com)")
    elif preset is not None:
        api_base = preset.api_base
        if api_base is None:
            source.problem(f.path + ("api_base",), "is required for an OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1)")
    else:
        api_base = DEFAULT_API_BASE.get(provider)

    api_key = f.string("api_key") if cloud is None else cloud.api_key
    custom_openai_base = provider == "openai" and preset is None and api_base != DEFAULT_API_BASE["openai"]
    if api_key is None and key_env and not custom_openai_base:
        api_key = source.env.get(key_env) or None

    headers = _headers(f)
    prices = _prices(f)
    wire_format = None
    if provider == "mock":
        wire_format = f.choice("format", MOCK_FORMATS, "auto")
        wire_format = None if wire_format == "auto" else wire_format

    wire_api = "chat"
    if provider in ("openai", "azure"):
        official = provider == "openai" and api_base == DEFAULT_API_BASE["openai"]
        wire_api = f.choice("wire_api", WIRE_APIS, "both" if official else "chat")

    forward = f.boolean("forward_client_credentials")
    if forward and provider != "anthropic":
        source.warn(
            f.path + ("forward_client_credentials",),
            "only anthropic deployments can receive a client's Anthropic credential; ignored here",
        )

    return Deployment(
        model_name=model_name,
        provider=provider,
        model=model,
        id=f.string("id") or f"{model_name}#{index}",
        api_base=api_base,
        api_key=api_key,
        api_version=f.string("api_version", DEFAULT_AZURE_API_VERSION if provider == "azure" else None),
        forward_client_credentials=forward and provider == "anthropic",
        weight=f.number("weight", 1.0) or 0.0,
        rpm=f.integer("rpm", minimum=1),
        tpm=f.integer("tpm", minimum=1),
        connect_timeout=f.duration("connect_timeout"),
        timeout=f.duration("timeout"),
        stream_idle_timeout=f.duration("stream_idle_timeout") or f.duration("stream_timeout"),
        max_retries=f.integer("max_retries"),
        tags=f.strings("tags"),
        region=cloud.region if cloud is not None else f.string("region") or f.string("region_name"),
        headers=headers,
        prices=prices,
        base_model=f.string("base_model"),
        wire_format=wire_format,
        wire_api=wire_api,
        aws=cloud.aws if cloud is not None else None,
        vertex=cloud.vertex if cloud is not None else None,
        source_line=source.line(f.path),
    )


def _headers(f: Fields) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for key in ("headers", "extra_headers"):
        section = f.sub(key)
        for name in section.data:
            value = section.string(name)
            if value is not None:
                out.append((name.lower(), value))
    return tuple(out)


def _prices(f: Fields) -> PriceOverride | None:
    values = {
        name: f.number(name)
        for name in (
            "input_cost_per_token",
            "output_cost_per_token",
            "cache_creation_input_token_cost",
            "cache_read_input_token_cost",
        )
    }
    if all(v is None for v in values.values()):
        return None
    return PriceOverride(**values)
