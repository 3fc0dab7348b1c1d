"""Bedrock, Vertex AI and Gemini deployments in the native and the LiteLLM config: where each
setting comes from, LiteLLM's way, and what is refused."""

from __future__ import annotations

import json
import sys

import pytest

from keystile.config import ConfigError
from keystile.config.model import AwsCredentials
from tests.test_config import load


def test_bedrock_with_the_standard_aws_chain_needs_only_a_region(tmp_path):
    settings = load(
        tmp_path,
        """\
        models:
          - name: claude
            provider: bedrock
            model: us.anthropic.claude-sonnet-4-5-20250929-v1:0
        """,
        env={"AWS_REGION": "eu-west-1"},
    )
    [d] = settings.deployments
    assert d.api_base == "https://bedrock-runtime.eu-west-1.amazonaws.com"
    assert d.region == "eu-west-1" and d.api_key is None and d.aws == AwsCredentials()


def test_bedrock_written_the_litellm_way(tmp_path):
    settings = load(
        tmp_path,
        """\
        model_list:
          - model_name: claude
            litellm_params:
              model: bedrock/global.anthropic.claude-sonnet-4-5-20250929-v1:0
              aws_region_name: us-west-2
              aws_access_key_id: os.environ/MY_KEY_ID
              aws_secret_access_key: os.environ/MY_SECRET
              aws_session_token: tok
          - model_name: claude-invoke
            litellm_params:
              model: bedrock/invoke/anthropic.claude-haiku-4-5-20251001-v1:0
              aws_profile_name: prod
              aws_region_name: us-east-1
        """,
        env={"MY_KEY_ID": "AKIAEXAMPLE", "MY_SECRET": "s3cr3t"},
    )
    claude, invoke = settings.deployments
    assert (claude.provider, claude.model, claude.region) == ("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "us-west-2")
    assert claude.aws == AwsCredentials("AKIAEXAMPLE", "s3cr3t", "tok")
    assert "s3cr3t" not in repr(claude) and "s3cr3t" not in repr(claude.aws)
    assert invoke.model == "anthropic.claude-haiku-4-5-20251001-v1:0" and invoke.aws == AwsCredentials(profile="prod")


@pytest.mark.parametrize(
    ("params", "env", "api_key", "aws"),
    [
        ("api_key: bedrock-key-1", {}, "bedrock-key-1", None),
        ("", {"AWS_BEARER_TOKEN_BEDROCK": "bedrock-key-2"}, "bedrock-key-2", None),
        ("", {"AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "envsecret"}, None, AwsCredentials("AKIAENV", "envsecret")),
        # credentials in the config win over a Bedrock API key in the environment
        ("aws_profile_name: dev", {"AWS_BEARER_TOKEN_BEDROCK": "ignored"}, None, AwsCredentials(profile="dev")),
    ],
)
def test_bedrock_authentication_precedence(tmp_path, params, env, api_key, aws):
    settings = load(
        tmp_path,
        f"""\
        models:
          - name: claude
            provider: bedrock
            model: anthropic.claude-sonnet-4-5-20250929-v1:0
            region: us-east-1
            {params}
        """,
        env=env,
    )
    [d] = settings.deployments
    assert (d.api_key, d.aws) == (api_key, aws)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("model: anthropic.claude-x", "models[0].region: is required for bedrock"),
        ("model: meta.llama3-8b-instruct-v1:0\n    region: us-east-1", "keystile serves Anthropic models on Bedrock"),
        ("model: anthropic.claude-x\n    region: us-east-1\n    api_key: k\n    aws_profile_name: p", "either a Bedrock API key or AWS credentials"),
        ("model: anthropic.claude-x\n    region: us-east-1\n    aws_access_key_id: AKIA", "go together"),
    ],
)
def test_bedrock_problems(tmp_path, params, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f"models:\n  - name: claude\n    provider: bedrock\n    {params}\n", env={})
    assert message in str(info.value)


def test_signing_without_botocore_installed_says_which_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "botocore", None)  # what an environment without keystile[bedrock] looks like
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "models:\n  - name: c\n    provider: bedrock\n    model: anthropic.claude-x\n    region: us-east-1\n", env={})
    assert "pip install 'keystile[bedrock]'" in str(info.value)
    # a Bedrock API key needs no extra
    load(tmp_path, "models:\n  - name: c\n    provider: bedrock\n    model: anthropic.claude-x\n    region: us-east-1\n    api_key: k\n", env={})


def test_vertex_without_google_auth_says_which_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.auth", None)
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "models:\n  - name: c\n    provider: vertex_ai\n    model: claude-x@1\n    vertex_project: p\n", env={})
    assert "pip install 'keystile[vertex]'" in str(info.value)


def test_vertex_reads_project_location_and_credentials_as_litellm(tmp_path):
    sa = tmp_path / "sa.json"
    sa.write_text(json.dumps({"type": "service_account", "project_id": "from-the-file"}))
    settings = load(
        tmp_path,
        f"""\
        model_list:
          - model_name: claude
            litellm_params: {{model: vertex_ai/claude-sonnet-4-5@20250929, vertex_location: global}}
          - model_name: gemini
            litellm_params: {{model: vertex_ai/gemini-2.5-pro, vertex_project: explicit, vertex_credentials: {sa}}}
          - model_name: gemini-file
            litellm_params: {{model: vertex_ai/gemini-2.5-flash, vertex_credentials: {sa}}}
        """,
        env={"VERTEXAI_PROJECT": "from-env", "VERTEXAI_LOCATION": "europe-west1"},
    )
    claude, gemini, from_file = settings.deployments
    assert (claude.vertex.project, claude.vertex.location, claude.vertex.credentials) == ("from-env", "global", None)
    assert claude.api_base == "https://aiplatform.googleapis.com"
    assert (gemini.vertex.project, gemini.vertex.location, gemini.vertex.credentials) == ("explicit", "europe-west1", str(sa))
    assert gemini.api_base == "https://europe-west1-aiplatform.googleapis.com"
    # no project anywhere but in the service-account file
    settings = load(tmp_path, f"models:\n  - name: g\n    provider: vertex_ai\n    model: gemini-2.5-flash\n    vertex_credentials: {sa}\n", env={})
    assert settings.deployments[0].vertex.project == "from-the-file"
    assert settings.deployments[0].vertex.location == "us-central1"  # LiteLLM's default


def test_vertex_needs_a_project(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "models:\n  - name: c\n    provider: vertex_ai\n    model: claude-x@1\n", env={})
    assert "vertex_project: is required for vertex_ai" in str(info.value)


def test_a_vertex_model_keystile_does_not_serve_is_skipped_in_a_litellm_config(tmp_path):
    settings = load(
        tmp_path,
        """\
        model_list:
          - model_name: llama
            litellm_params: {model: vertex_ai/meta/llama-3.1-405b-instruct-maas, vertex_project: p}
          - model_name: gemini
            litellm_params: {model: gemini/gemini-2.5-flash}
        """,
        env={"GEMINI_API_KEY": "g-key"},
    )
    [gemini] = settings.deployments
    assert (gemini.provider, gemini.model, gemini.api_key) == ("gemini", "gemini-2.5-flash", "g-key")
    assert gemini.api_base == "https://generativelanguage.googleapis.com"
    assert any("'llama' deployment is skipped" in w for w in settings.warnings)


@pytest.mark.parametrize(("env", "key"), [({"GEMINI_API_KEY": "a", "GOOGLE_API_KEY": "b"}, "a"), ({"GOOGLE_API_KEY": "b"}, "b"), ({}, None)])
def test_gemini_key_from_the_environment(tmp_path, env, key):
    settings = load(tmp_path, "models:\n  - name: g\n    provider: gemini\n    model: gemini-2.5-pro\n", env=env)
    assert settings.deployments[0].api_key == key


def test_the_mock_answers_as_any_cloud(tmp_path):
    settings = load(tmp_path, "models:\n  - name: b\n    provider: mock\n    format: bedrock\n  - name: v\n    provider: mock\n    format: vertex\n", env={})
    assert [d.wire_format for d in settings.deployments] == ["bedrock", "vertex"]
