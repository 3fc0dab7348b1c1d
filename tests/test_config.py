"""Reading a config: environment references, default upstream keys, OpenAI-compatible presets."""

from __future__ import annotations

import textwrap

import pytest

from keystile.config import ConfigError, Settings, load_settings


def load(tmp_path, text: str, env: dict[str, str]) -> Settings:
    path = tmp_path / "keystile.yaml"
    path.write_text(textwrap.dedent(text))
    return load_settings(str(path), env=env)


def test_environment_references_in_the_native_format(tmp_path):
    settings = load(
        tmp_path,
        """\
        master_key: ${GATEWAY_MASTER}
        models:
          - name: claude
            provider: anthropic
            api_key: ${MY_ANTHROPIC_KEY}
            api_base: https://${ANTHROPIC_HOST:-api.anthropic.com}
            headers: {x-team: "team-${TEAM:-none}"}
        """,
        env={"GATEWAY_MASTER": "sk-ks-from-env-0001", "MY_ANTHROPIC_KEY": "sk-ant-from-env", "TEAM": "blue"},
    )
    [claude] = settings.deployments
    assert settings.master_key == "sk-ks-from-env-0001"
    assert (claude.api_key, claude.api_base) == ("sk-ant-from-env", "https://api.anthropic.com")
    assert claude.headers == (("x-team", "team-blue"),)


def test_a_missing_variable_without_default_is_a_problem_with_its_line(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "models:\n  - name: a\n    provider: anthropic\n    api_key: ${NOT_SET_ANYWHERE}\n", env={})
    [problem] = info.value.problems
    assert "keystile.yaml:4" in problem and "NOT_SET_ANYWHERE is not set" in problem


def test_upstream_keys_default_to_the_providers_own_variables(tmp_path):
    env = {"ANTHROPIC_API_KEY": "sk-ant-env", "OPENAI_API_KEY": "sk-openai-env", "AZURE_API_KEY": "azure-env", "GROQ_API_KEY": "gsk-env"}
    settings = load(
        tmp_path,
        """\
        models:
          - {name: claude, provider: anthropic}
          - {name: gpt, provider: openai}
          - {name: azure, provider: azure, api_base: "https://r.openai.azure.com"}
          - {name: llama, provider: groq, model: llama-3.3-70b-versatile}
          - {name: local, provider: openai, api_base: "http://127.0.0.1:8000/v1"}
          - {name: written, provider: anthropic, api_key: sk-ant-written}
        """,
        env=env,
    )
    keys = {d.model_name: d.api_key for d in settings.deployments}
    assert keys == {
        "claude": "sk-ant-env",
        "gpt": "sk-openai-env",
        "azure": "azure-env",
        "llama": "gsk-env",
        # An OpenAI key is never sent to another server just because it is in the environment.
        "local": None,
        "written": "sk-ant-written",
    }


@pytest.mark.parametrize(
    "text",
    [
        "models:\n  - {name: llama, provider: groq, model: llama-3.3-70b-versatile}\n",
        "model_list:\n  - model_name: llama\n    litellm_params: {model: groq/llama-3.3-70b-versatile}\n",
    ],
    ids=["native", "litellm"],
)
def test_an_openai_compatible_preset_is_an_openai_deployment_at_its_url(tmp_path, text):
    [llama] = load(tmp_path, text, env={}).deployments
    assert (llama.provider, llama.model, llama.api_base) == ("openai", "llama-3.3-70b-versatile", "https://api.groq.com/openai/v1")


def test_a_preset_without_a_known_url_needs_api_base(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "models:\n  - {name: mine, provider: vllm, model: qwen}\n", env={})
    assert any("api_base" in problem and "is required" in problem for problem in info.value.problems)


# --- a LiteLLM config keeps its meaning --------------------------------------------------------

# (provider, api_base as written in a LiteLLM config, the base keystile appends /chat/completions
# to). Expected values follow LiteLLM's own code: ollama_chat posts to <api_base>/api/chat (its
# server root; Ollama serves the OpenAI API under /v1), MistralConfig appends /v1 when missing,
# OpenAIGPTConfig takes an api_base already ending in chat/completions as the whole endpoint,
# and every other OpenAI-type provider uses api_base as the client's base URL.
API_BASES = [
    ("ollama", "http://localhost:11434", "http://localhost:11434/v1"),
    ("ollama", "http://localhost:11434/", "http://localhost:11434/v1"),
    ("ollama_chat", "http://gpu-box:11434", "http://gpu-box:11434/v1"),
    ("ollama_chat", "http://gpu-box:11434/api/chat", "http://gpu-box:11434/v1"),
    ("ollama", "http://gpu-box:11434/api/generate", "http://gpu-box:11434/v1"),
    ("ollama", "http://gpu-box:11434/v1", "http://gpu-box:11434/v1"),
    ("mistral", "https://mistral-large.eastus2.inference.ai.azure.com", "https://mistral-large.eastus2.inference.ai.azure.com/v1"),
    ("mistral", "https://api.mistral.ai/v1", "https://api.mistral.ai/v1"),
    ("openai", "http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ("openai", "http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("openai", "http://127.0.0.1:8000/v1/chat/completions", "http://127.0.0.1:8000/v1"),
    ("hosted_vllm", "http://vllm:8000/v1", "http://vllm:8000/v1"),
    ("lm_studio", "http://localhost:1234/v1", "http://localhost:1234/v1"),
    ("groq", "https://api.groq.com/openai/v1", "https://api.groq.com/openai/v1"),
    ("openrouter", "https://openrouter.ai/api/v1/", "https://openrouter.ai/api/v1"),
]


@pytest.mark.parametrize("provider,written,expected", API_BASES, ids=[f"{p} {w}" for p, w, _ in API_BASES])
def test_a_litellm_api_base_is_read_as_litellm_reads_it(tmp_path, provider, written, expected):
    text = f"model_list:\n  - model_name: m\n    litellm_params: {{model: {provider}/llama3, api_base: '{written}'}}\n"
    [deployment] = load(tmp_path, text, env={}).deployments
    assert (deployment.provider, deployment.model, deployment.api_base) == ("openai", "llama3", expected)


def test_the_native_format_reads_a_preset_api_base_the_same_way(tmp_path):
    [ollama] = load(tmp_path, "models:\n  - {name: m, provider: ollama, model: llama3, api_base: 'http://localhost:11434'}\n", env={}).deployments
    assert ollama.api_base == "http://localhost:11434/v1"


@pytest.mark.parametrize("written", ["https://proxy.internal", "https://proxy.internal/v1", "https://proxy.internal/v1/messages"])
def test_an_anthropic_api_base_is_the_root_keystile_appends_v1_messages_to(tmp_path, written):
    text = f"model_list:\n  - model_name: c\n    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: '{written}'}}\n"
    [claude] = load(tmp_path, text, env={}).deployments
    assert claude.api_base == "https://proxy.internal"


def test_custom_llm_provider_names_the_provider_of_a_model_without_prefix(tmp_path):
    text = """\
        model_list:
          - model_name: llama
            litellm_params: {model: meta-llama/Llama-3.1-8B-Instruct, custom_llm_provider: hosted_vllm, api_base: 'http://vllm:8000/v1'}
        """
    [llama] = load(tmp_path, text, env={}).deployments
    assert (llama.provider, llama.model, llama.api_base) == ("openai", "meta-llama/Llama-3.1-8B-Instruct", "http://vllm:8000/v1")
    assert not load(tmp_path, text, env={}).warnings


def test_a_provider_typo_is_an_error_with_its_line_and_a_suggestion(tmp_path):
    text = """\
        model_list:
          - model_name: gpt-4o
            litellm_params: {model: openai/gpt-4o}
          - model_name: gpt-4o
            litellm_params:
              model: opneai/gpt-4o
        """
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, env={"OPENAI_API_KEY": "sk-x"})
    [problem] = info.value.problems
    assert "keystile.yaml:6: model_list[1].litellm_params.model" in problem
    assert "unknown provider 'opneai'" in problem and "did you mean 'openai'?" in problem


def test_a_provider_keystile_does_not_serve_yet_skips_its_deployment_with_a_warning(tmp_path):
    text = """\
        model_list:
          - model_name: claude
            litellm_params: {model: anthropic/claude-sonnet-4-5}
          - model_name: claude
            litellm_params: {model: sagemaker/jumpstart-claude-endpoint, aws_region_name: us-east-1}
          - model_name: command
            litellm_params: {model: cohere/command-r-plus}
        """
    settings = load(tmp_path, text, env={"ANTHROPIC_API_KEY": "sk-ant-x"})
    assert [(d.model_name, d.provider) for d in settings.deployments] == [("claude", "anthropic")]
    skipped = [w for w in settings.warnings if "not served by keystile yet" in w]
    assert len(skipped) == 2
    assert "keystile.yaml:5:" in skipped[0] and "'sagemaker'" in skipped[0] and "'claude' deployment is skipped" in skipped[0]
    assert "'cohere'" in skipped[1]


# Settings from LiteLLM's documented general_settings / litellm_settings / router_settings
# reference (docs/proxy/config_settings) that keystile does not implement.
UNIMPLEMENTED = {
    "litellm_settings": ["success_callback", "failure_callback", "callbacks", "service_callbacks", "drop_params",
                         "set_verbose", "json_logs", "cache", "cache_params", "default_fallbacks",
                         "content_policy_fallbacks", "turn_off_message_logging", "modify_params", "force_ipv4"],
    "general_settings": ["alerting", "alerting_threshold", "store_model_in_db", "allow_requests_on_db_unavailable",
                         "background_health_checks", "health_check_interval", "disable_spend_logs", "custom_auth",
                         "litellm_key_header_name", "global_max_parallel_requests", "proxy_batch_write_at",
                         "enforce_user_param"],
    "router_settings": ["enable_pre_call_checks", "model_group_alias", "disable_cooldowns", "retry_policy",
                        "allowed_fails_policy", "enable_tag_filtering", "max_fallbacks", "default_max_parallel_requests",
                        "routing_strategy_args", "cache_responses", "provider_budget_config"],
}
VALUES = {"success_callback": ["langfuse"], "failure_callback": ["sentry"], "callbacks": ["langfuse"], "service_callbacks": ["datadog"],
          "cache_params": {"type": "redis"}, "default_fallbacks": ["claude"], "content_policy_fallbacks": [{"claude": ["claude"]}],
          "alerting": ["slack"], "model_group_alias": {"gpt-4": "claude"}, "retry_policy": {"TimeoutErrorRetries": 3},
          "allowed_fails_policy": {"TimeoutErrorAllowedFails": 3}, "routing_strategy_args": {"ttl": 60},
          "provider_budget_config": {"openai": {"budget_limit": 100}}, "custom_auth": "my_auth.handler"}


def test_every_litellm_setting_keystile_does_not_implement_gets_one_warning_naming_it(tmp_path):
    sections = ""
    for section, names in UNIMPLEMENTED.items():
        sections += f"{section}:\n" + "".join(f"  {name}: {VALUES.get(name, True)!r}\n".replace("'", '"') for name in names)
    # implemented, so no warning for these
    sections = sections.replace(
        "general_settings:\n", "general_settings:\n  master_key: sk-litellm-master\n  database_url: sqlite:///x.db\n  max_request_size_mb: 2\n"
    )
    text = (
        "model_list:\n"
        "  - model_name: claude\n"
        "    litellm_params: {model: anthropic/claude-sonnet-4-5, drop_params: true, temperature: 0.2}\n"
        "    model_info: {mode: chat, max_tokens: 8192, access_groups: [beta]}\n"
        "guardrails:\n  - guardrail_name: pii\n"
        + sections
    )
    settings = load(tmp_path, text, env={"ANTHROPIC_API_KEY": "sk-ant-x"})
    warnings = settings.warnings
    for section, names in UNIMPLEMENTED.items():
        for name in names:
            hits = [w for w in warnings if f": {section}.{name}: " in w]
            assert len(hits) == 1, (section, name, warnings)
            assert "keystile does not implement; ignored" in hits[0]
    for path in ("model_list[0].litellm_params.drop_params", "model_list[0].litellm_params.temperature",
                 "model_list[0].model_info.access_groups", ": guardrails: "):
        assert sum(path in w for w in warnings) == 1, (path, warnings)
    assert not any(name in w for w in warnings for name in ("master_key", "database_url", "max_request_size_mb", "model_info.mode"))
    assert len(warnings) == sum(map(len, UNIMPLEMENTED.values())) + 4
    assert any("success_callback" in w and "/metrics" in w for w in warnings)  # says what keystile does instead


def test_implemented_litellm_settings_are_honoured_without_a_warning(tmp_path):
    text = """\
        model_list:
          - model_name: claude
            litellm_params: {model: anthropic/claude-sonnet-4-5}
            model_info: {id: claude-primary, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
          - model_name: gpt
            litellm_params: {model: openai/gpt-4o}
        general_settings:
          master_key: os.environ/LITELLM_MASTER_KEY
          max_request_size_mb: 2
          store_prompts_in_spend_logs: true
          maximum_spend_logs_retention_period: 7d
          user_api_key_cache_ttl: 30
        litellm_settings:
          num_retries: 4
          request_timeout: 120
          fallbacks: [{claude: [gpt]}]
        router_settings:
          routing_strategy: least-busy
          stream_timeout: 45
          allowed_fails: 5
          cooldown_time: 20
          redis_host: redis.internal
          redis_port: 6380
          redis_password: pw
          redis_db: 2
        environment_variables:
          LITELLM_MASTER_KEY: sk-from-config-env
          OPENAI_API_KEY: sk-openai-from-config
          ANTHROPIC_API_KEY: sk-ant-from-config
        """
    settings = load(tmp_path, text, env={"ANTHROPIC_API_KEY": "sk-ant-from-real-env"})
    assert settings.warnings == ()
    claude, gpt = settings.deployments
    assert claude.id == "claude-primary" and claude.prices.input_cost_per_token == 0.000001
    # environment_variables fill in what the real environment lacks; the real environment wins
    assert (settings.master_key, gpt.api_key, claude.api_key) == ("sk-from-config-env", "sk-openai-from-config", "sk-ant-from-real-env")
    assert settings.server.max_body_bytes == 2 * 1024 * 1024
    assert (settings.spend.log_content, settings.spend.log_retention, settings.key_cache_ttl) == (True, 7 * 86400, 30)
    router = settings.router
    assert (router.num_retries, router.timeout, router.strategy, router.stream_idle_timeout) == (4, 120, "least_busy", 45)
    assert (router.cooldown_failures, router.cooldown_seconds, router.fallbacks) == (5, 20, (("claude", ("gpt",)),))
    assert settings.redis_url == "redis://:pw@redis.internal:6380/2"
