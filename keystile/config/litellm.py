"""A LiteLLM proxy ``config.yaml`` read as-is, so a LiteLLM user can switch by pointing at it.

Understood: ``model_list[].model_name`` / ``litellm_params`` (``model: provider/model`` or
``custom_llm_provider``, ``api_base`` read as LiteLLM reads it for that provider, ``api_key``,
``api_version``, ``rpm``, ``tpm``, ``timeout``, ``stream_timeout``, ``max_retries``, ``weight``,
``*_cost_per_token``…) / ``model_info`` (``id``, ``base_model``, prices); ``environment_variables``;
the ``general_settings``, ``litellm_settings`` and ``router_settings`` keystile implements
(``IMPLEMENTED``; of the callbacks, ``otel``, which turns tracing on). The config never changes meaning silently: a provider prefix LiteLLM does not
know (a typo) is an error; one keystile does not serve yet skips that deployment with a warning;
every other LiteLLM setting keystile does not implement gets one warning line naming it.
keystile-only settings sit under a top-level ``keystile:`` key, written as in the native format
(``server``, ``spend``, ``otel``, ``redis_url``, ``key_cache_ttl``, ``store_outage_grace``, ``log_level``,
``default_max_tokens``, and ``router`` refining ``router_settings``); they win over the LiteLLM
settings that say the same thing.
"""

from __future__ import annotations

import difflib
from collections import ChainMap
from dataclasses import replace
from typing import Any

from keystile.config.clouds import not_served
from keystile.config.deployments import DEPLOYMENT_FIELDS, read_deployment
from keystile.config.model import DEFAULT_DATABASE_URL, Deployment, RouterSettings, Settings
from keystile.config.native import KEYSTILE_SECTION, read_fallbacks, read_gateway_settings, read_router
from keystile.config.presets import LITELLM_PROVIDERS, OPENAI_COMPATIBLE
from keystile.config.source import Fields, Source

_DIRECT_PROVIDERS = {
    "anthropic": "anthropic",
    "openai": "openai",
    "azure": "azure",
    "text-completion-openai": "openai",
    "bedrock": "bedrock",
    "vertex_ai": "vertex_ai",
    "gemini": "gemini",
}
# LiteLLM's Bedrock model strings may name the Bedrock API first (bedrock/invoke/…, bedrock/converse/…);
# keystile calls InvokeModel for both.
_BEDROCK_ROUTES = ("invoke/", "converse/")
_STRATEGIES = {
    "simple-shuffle": "weighted",
    "least-busy": "least_busy",
    "latency-based-routing": "latency",
    "usage-based-routing": "capacity",
    "usage-based-routing-v2": "capacity",
}

# The LiteLLM settings keystile honours, by section; any other key found there is warned about.
IMPLEMENTED: dict[str, frozenset[str]] = {
    "": frozenset({"model_list", "general_settings", "litellm_settings", "router_settings", "environment_variables", "keystile"}),
    "general_settings": frozenset(
        {"master_key", "database_url", "max_request_size_mb", "store_prompts_in_spend_logs",
         "maximum_spend_logs_retention_period", "user_api_key_cache_ttl"}
    ),
    "litellm_settings": frozenset(
        {"num_retries", "request_timeout", "fallbacks", "context_window_fallbacks",
         "callbacks", "success_callback", "failure_callback"}  # only "otel" (the rest: _otel_callback warns)
    ),
    "router_settings": frozenset(
        {"routing_strategy", "num_retries", "timeout", "stream_timeout", "retry_after", "allowed_fails", "cooldown_time",
         "fallbacks", "context_window_fallbacks", "redis_url", "redis_host", "redis_port", "redis_password", "redis_db"}
    ),
}
_PARAMS = DEPLOYMENT_FIELDS | {"model", "custom_llm_provider"}
# model_info is mostly description (mode, max_tokens, supports_*); these keys change behaviour.
_MODEL_INFO_READ = ("id", "base_model", "input_cost_per_token", "output_cost_per_token",
                    "cache_creation_input_token_cost", "cache_read_input_token_cost")
_MODEL_INFO_UNIMPLEMENTED = ("access_groups", "team_id", "team_public_model_name")

# What keystile does instead, for the settings LiteLLM users write most.
_INSTEAD = {
    "service_callbacks": "keystile has no logging callbacks; see /metrics and /health",
    "alerting": "keystile sends no alerts; watch /metrics",
    "store_model_in_db": "keystile serves the models in this file only",
    "enable_pre_call_checks": "the context window is not checked before the call; the upstream's error comes back "
    "and context_window_fallbacks apply",
    "drop_params": "keystile forwards the parameters the client sent; an upstream that rejects one answers with its error",
    "modify_params": "keystile forwards the request as the client sent it",
    "set_verbose": "use keystile.log_level",
    "json_logs": "use keystile.log_level",
    "cache": "keystile does not cache responses",
    "cache_params": "keystile does not cache responses",
    "guardrails": "keystile runs no guardrails",
    "model_group_alias": "keystile has no model aliases: a client asking for the alias gets 404; "
    "name a model group after it instead",
    "default_fallbacks": "list fallbacks per model under router_settings.fallbacks",
    "allow_requests_on_db_unavailable": "keystile serves keys it has cached through a database outage for "
    "keystile.store_outage_grace (default 300s)",
    "max_budget": "keystile has no proxy-wide budget; give keys, users and teams budgets",
    "include": "keystile reads one file; copy the included model_list into it",
    "litellm_key_header_name": "keystile reads keys from x-keystile-key, x-litellm-api-key, Authorization, api-key "
    "and x-api-key",
    "access_groups": "keystile has no model access groups; list the model names in a key's models",
}
# The same for a deployment's litellm_params.
_PARAM_INSTEAD = {
    "drop_params": _INSTEAD["drop_params"],
    "order": "deployments of a group share traffic by weight; there is no order of preference",
    "max_budget": "keystile has no per-deployment budgets; give keys, users and teams budgets",
    **{
        name: "keystile signs with what botocore's credential chain finds: put role_arn / source_profile "
        "(or web_identity_token_file) in an AWS profile and name it in aws_profile_name"
        for name in ("aws_role_name", "aws_session_name", "aws_web_identity_token", "aws_sts_endpoint", "aws_external_id")
    },
}


def split_model(model: str) -> tuple[str | None, str]:
    """``anthropic/claude-x`` → (``anthropic``, ``claude-x``); a bare name is guessed from its family."""
    prefix, sep, rest = model.partition("/")
    if sep:
        return prefix, rest
    if model.startswith("claude"):
        return "anthropic", model
    if model.startswith(("gpt-", "o1", "o3", "o4", "chatgpt", "text-embedding", "davinci", "babbage")):
        return "openai", model
    return None, model


def served_provider(provider: str) -> str | None:
    """The keystile provider (or OpenAI-compatible preset) serving LiteLLM's ``provider``, if any."""
    if provider in _DIRECT_PROVIDERS:
        return _DIRECT_PROVIDERS[provider]
    return provider if provider in OPENAI_COMPATIBLE else None


def read_litellm(source: Source) -> Settings:
    top = Fields(source, source.data, ())
    # LiteLLM puts these into its environment unless already set there: the real environment wins.
    variables = top.sub("environment_variables")
    if variables.data:
        defaults = {str(k): str(v) for k, v in variables.data.items() if v is not None and not isinstance(v, (dict, list))}
        source.env = ChainMap(dict(source.env), defaults)
    general = top.sub("general_settings")
    litellm_settings = top.sub("litellm_settings")
    router_settings = top.sub("router_settings")
    keystile_section = top.sub("keystile")  # keystile-only settings may sit in a LiteLLM file

    deployments = []
    counts: dict[str, int] = {}
    model_list = top.raw("model_list")
    if not isinstance(model_list, list):
        source.problem(("model_list",), "expected a list of models")
        model_list = []
    for i, entry in enumerate(model_list):
        deployment = read_model_entry(source, entry, ("model_list", i), counts)
        if deployment is not None:
            deployments.append(deployment)

    names = {d.model_name for d in deployments}
    d = RouterSettings()
    strategy_name = router_settings.string("routing_strategy", "simple-shuffle") or "simple-shuffle"
    if strategy_name not in _STRATEGIES:
        source.warn(router_settings.path + ("routing_strategy",), f"keystile has no {strategy_name!r} routing; using weighted random")
    retries = router_settings.integer("num_retries")
    if retries is None:
        retries = litellm_settings.integer("num_retries", d.num_retries)
    timeout = router_settings.duration("timeout") or litellm_settings.duration("request_timeout") or d.timeout
    fallbacks = read_fallbacks(router_settings, "fallbacks", names) or read_fallbacks(litellm_settings, "fallbacks", names)
    cw_fallbacks = read_fallbacks(router_settings, "context_window_fallbacks", names) or read_fallbacks(
        litellm_settings, "context_window_fallbacks", names
    )
    router = RouterSettings(
        strategy=_STRATEGIES.get(strategy_name, "weighted"),
        num_retries=retries if retries is not None else d.num_retries,
        timeout=timeout,
        stream_idle_timeout=router_settings.duration("stream_timeout") or d.stream_idle_timeout,
        retry_after_cap=router_settings.duration("retry_after", d.retry_after_cap) or d.retry_after_cap,
        cooldown_failures=router_settings.integer("allowed_fails", d.cooldown_failures, minimum=1) or d.cooldown_failures,
        cooldown_seconds=router_settings.duration("cooldown_time", d.cooldown_seconds) or d.cooldown_seconds,
        fallbacks=fallbacks,
        context_window_fallbacks=cw_fallbacks,
    )

    redis_url = router_settings.string("redis_url")
    if redis_url is None and router_settings.has("redis_host"):
        host = router_settings.string("redis_host")
        port = router_settings.integer("redis_port", 6379)
        password = router_settings.string("redis_password")
        db = router_settings.integer("redis_db", 0)
        auth = f":{password}@" if password else ""
        redis_url = f"redis://{auth}{host}:{port}/{db}"

    # keystile's own router settings (per-group strategies, caps, stream idle timeout, …) refine
    # what router_settings said; only the ones written there count.
    native_router = keystile_section.sub("router")
    if native_router.data:
        refined = read_router(native_router, names)
        written = {"num_retries" if key == "retries" else key for key in native_router.data}
        router = replace(router, **{name: getattr(refined, name) for name in written if name in RouterSettings.__dataclass_fields__})

    gateway = read_gateway_settings(keystile_section, otel_enabled=_otel_callback(litellm_settings))
    gateway["redis_url"] = redis_url or gateway["redis_url"]
    _apply_general_settings(general, keystile_section, gateway)
    keystile_section.warn_unknown(KEYSTILE_SECTION)
    for section, implemented in IMPLEMENTED.items():
        warn_unimplemented(top if not section else top.sub(section), implemented, "LiteLLM setting")
    return Settings(
        deployments=tuple(deployments),
        master_key=general.string("master_key"),
        database_url=general.string("database_url", DEFAULT_DATABASE_URL) or DEFAULT_DATABASE_URL,
        router=router,
        source_format="litellm",
        **gateway,
    )


_CALLBACK_KEYS = ("callbacks", "success_callback", "failure_callback")


def _otel_callback(litellm_settings: Fields) -> bool:
    """Whether LiteLLM's callbacks ask for ``otel`` (tracing, the ``otel:`` settings); every other
    callback named there gets a warning."""
    on = False
    for key in _CALLBACK_KEYS:
        names = litellm_settings.raw(key)
        if names is None:
            continue
        for name in names if isinstance(names, list) else [names]:
            if name == "otel":
                on = True
                continue
            shown = repr(name) if isinstance(name, str) else "this"
            litellm_settings.source.warn(
                litellm_settings.path + (key,),
                f"LiteLLM callback {shown} keystile does not implement; ignored (its one callback is \"otel\", "
                "OpenTelemetry tracing; it also exports Prometheus /metrics and keeps a spend log)",
            )
    return on


def read_model_entry(source: Source, entry: Any, path: tuple, counts: dict[str, int]) -> Deployment | None:
    """One ``model_list`` entry (``model_name``, ``litellm_params``, ``model_info``) as a deployment.

    Problems and warnings go to ``source``; None when the entry cannot be served. ``counts``
    numbers the deployments of each name (``<name>#<n>`` is the id when ``model_info`` has none).
    ``/model/new`` reads its body with this too, so a model added at run time obeys the same rules.
    """
    f = Fields(source, entry, path)
    name = f.string("model_name", required=True)
    params = f.sub("litellm_params")
    info = f.sub("model_info")
    upstream = params.string("model", required=True)
    if not name or not upstream:
        return None
    provider, model = _provider_and_model(params, upstream)
    if model == "*":
        model = ""  # "anthropic/*": the requested name goes upstream as-is
    if provider == "bedrock" and model.startswith(_BEDROCK_ROUTES):
        if model.startswith("converse/"):
            source.warn(params.path + ("model",), "keystile calls Bedrock's InvokeModel API, not Converse, for Anthropic models")
        model = model.split("/", 1)[1]
    reason = not_served(provider, model)
    if reason is not None:
        source.warn(params.path + ("model",), f"{reason}; the {name!r} deployment is skipped")
        return None
    if provider is None:
        source.problem(params.path + ("model",), f"cannot tell the provider of {upstream!r}; write it as provider/model (anthropic/…, openai/…, azure/…)")
        return None
    serving = served_provider(provider)
    if serving is None:
        where = params.path + (("custom_llm_provider",) if params.has("custom_llm_provider") else ("model",))
        if provider in LITELLM_PROVIDERS:
            source.warn(where, f"provider {provider!r} is not served by keystile yet; the {name!r} deployment is skipped")
        else:
            source.problem(where, _unknown_provider(provider))
        return None
    index = counts.get(name, 0)
    counts[name] = index + 1
    for key in _MODEL_INFO_READ:
        if info.has(key) and not params.has(key):
            params.data[key] = info.data[key]
    deployment = read_deployment(params, model_name=name, provider=serving, model=model, index=index)
    warn_unimplemented(params, _PARAMS, "LiteLLM parameter", _PARAM_INSTEAD)
    for key in _MODEL_INFO_UNIMPLEMENTED:
        if info.has(key):
            _warn(info, key, "LiteLLM setting")
    return deployment


def _provider_and_model(params: Fields, upstream: str) -> tuple[str | None, str]:
    """LiteLLM's ``custom_llm_provider`` names the provider of a ``model`` that does not start with it."""
    explicit = params.string("custom_llm_provider")
    if explicit:
        return explicit, upstream.removeprefix(explicit + "/")
    return split_model(upstream)


def _unknown_provider(provider: str) -> str:
    close = difflib.get_close_matches(provider, sorted(LITELLM_PROVIDERS), n=1, cutoff=0.75)
    hint = f" — did you mean {close[0]!r}?" if close else ""
    return f"unknown provider {provider!r}{hint} (LiteLLM does not know it either)"


def _apply_general_settings(general: Fields, keystile_section: Fields, gateway: dict[str, Any]) -> None:
    """The ``general_settings`` that map onto keystile settings, unless ``keystile:`` says otherwise."""
    server = keystile_section.sub("server")
    spend = keystile_section.sub("spend")
    size_mb = general.number("max_request_size_mb")
    if size_mb and not server.has("max_body_bytes"):
        gateway["server"] = replace(gateway["server"], max_body_bytes=max(1024, int(size_mb * 1024 * 1024)))
    if general.has("store_prompts_in_spend_logs") and not spend.has("log_content"):
        gateway["spend"] = replace(gateway["spend"], log_content=general.boolean("store_prompts_in_spend_logs"))
    retention = general.duration("maximum_spend_logs_retention_period")
    if retention is not None and not spend.has("log_retention"):
        gateway["spend"] = replace(gateway["spend"], log_retention=retention)
    ttl = general.duration("user_api_key_cache_ttl")
    if ttl and not keystile_section.has("key_cache_ttl"):
        gateway["key_cache_ttl"] = ttl


def warn_unimplemented(f: Fields, implemented: frozenset[str], what: str, instead: dict[str, str] = _INSTEAD) -> None:
    """One warning per key of ``f`` that keystile does not implement, saying what it does instead."""
    for key in f.data:
        if key not in implemented:
            _warn(f, key, what, instead)


def _warn(f: Fields, key: str, what: str, instead: dict[str, str] = _INSTEAD) -> None:
    hint = instead.get(key)
    f.source.warn(f.path + (key,), f"{what} keystile does not implement; ignored" + (f" ({hint})" if hint else ""))
