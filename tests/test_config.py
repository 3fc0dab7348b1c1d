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
