"""A LiteLLM proxy ``config.yaml`` read as-is, so a LiteLLM user can switch by pointing at it.

Understood: ``model_list[].model_name`` / ``litellm_params`` (``model: provider/model``,
``api_base``, ``api_key``, ``api_version``, ``rpm``, ``tpm``, ``timeout``, ``stream_timeout``,
``max_retries``, ``weight``, ``*_cost_per_token``…) / ``model_info.id`` and ``base_model``;
``general_settings.master_key`` and ``database_url``; ``router_settings`` and
``litellm_settings`` for retries, timeouts, fallbacks and cooldowns. A deployment on a
provider keystile does not serve (bedrock, vertex_ai, …) is skipped with a warning.
keystile-only settings sit under a top-level ``keystile:`` key, written as in the native
format (``server``, ``spend``, ``redis_url``, ``key_cache_ttl``, ``store_outage_grace``,
``log_level``, ``default_max_tokens``, and ``router`` refining ``router_settings``).
"""

from __future__ import annotations

from dataclasses import replace

from keystile.config.deployments import DEPLOYMENT_FIELDS, read_deployment
from keystile.config.model import DEFAULT_DATABASE_URL, RouterSettings, Settings
from keystile.config.native import KEYSTILE_SECTION, read_fallbacks, read_gateway_settings, read_router
from keystile.config.presets import OPENAI_COMPATIBLE
from keystile.config.source import Fields, Source

_DIRECT_PROVIDERS = {"anthropic": "anthropic", "openai": "openai", "azure": "azure", "text-completion-openai": "openai"}
_STRATEGIES = {
    "simple-shuffle": "weighted",
    "least-busy": "least_busy",
    "latency-based-routing": "latency",
    "usage-based-routing": "capacity",
    "usage-based-routing-v2": "capacity",
    "cost-based-routing": "weighted",
}
_IGNORED_LITELLM_PARAMS = frozenset({"drop_params", "order", "use_in_pass_through", "merge_reasoning_content_in_choices"})


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


def read_litellm(source: Source) -> Settings:
    top = Fields(source, source.data, ())
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
        f = Fields(source, entry, ("model_list", i))
        name = f.string("model_name", required=True)
        params = f.sub("litellm_params")
        info = f.sub("model_info")
        upstream = params.string("model", required=True)
        if not name or not upstream:
            continue
        provider, model = split_model(upstream)
        if model == "*":
            model = ""  # "anthropic/*": the requested name goes upstream as-is
        if provider is None:
            source.problem(params.path + ("model",), f"cannot tell the provider of {upstream!r}; write it as provider/model (anthropic/…, openai/…, azure/…)")
            continue
        if provider not in _DIRECT_PROVIDERS and provider not in OPENAI_COMPATIBLE:
            source.warn(params.path + ("model",), f"provider {provider!r} is not supported by keystile; {name!r} deployment skipped")
            continue
        provider = _DIRECT_PROVIDERS.get(provider, provider)
        index = counts.get(name, 0)
        counts[name] = index + 1
        if info.has("id") and not params.has("id"):
            params.data["id"] = info.data["id"]
        if info.has("base_model") and not params.has("base_model"):
            params.data["base_model"] = info.data["base_model"]
        deployments.append(read_deployment(params, model_name=name, provider=provider, model=model, index=index))
        params.warn_unknown(DEPLOYMENT_FIELDS | {"model"} | _IGNORED_LITELLM_PARAMS)

    names = {d.model_name for d in deployments}
    d = RouterSettings()
    strategy_name = router_settings.string("routing_strategy", "simple-shuffle") or "simple-shuffle"
    if strategy_name not in _STRATEGIES:
        source.warn(router_settings.path + ("routing_strategy",), f"unknown routing strategy {strategy_name!r}; using weighted random")
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
        auth = f":{password}@" if password else ""
        redis_url = f"redis://{auth}{host}:{port}/0"

    # keystile's own router settings (per-group strategies, caps, stream idle timeout, …) refine
    # what router_settings said; only the ones written there count.
    native_router = keystile_section.sub("router")
    if native_router.data:
        refined = read_router(native_router, names)
        written = {"num_retries" if key == "retries" else key for key in native_router.data}
        router = replace(router, **{name: getattr(refined, name) for name in written if name in RouterSettings.__dataclass_fields__})

    gateway = read_gateway_settings(keystile_section)
    gateway["redis_url"] = redis_url or gateway["redis_url"]
    keystile_section.warn_unknown(KEYSTILE_SECTION)
    return Settings(
        deployments=tuple(deployments),
        master_key=general.string("master_key"),
        database_url=general.string("database_url", DEFAULT_DATABASE_URL) or DEFAULT_DATABASE_URL,
        router=router,
        source_format="litellm",
        **gateway,
    )
