"""The settings of the cloud deployments — ``bedrock``, ``vertex_ai``, ``gemini`` — and where each
reads its defaults from, LiteLLM's way.

- ``bedrock``: ``region`` (``aws_region_name``; else ``AWS_REGION``, ``AWS_DEFAULT_REGION``,
  ``AWS_REGION_NAME``); a Bedrock API key (``api_key``, else ``AWS_BEARER_TOKEN_BEDROCK``), sent
  as Bearer; or SigV4 with ``aws_access_key_id`` / ``aws_secret_access_key`` /
  ``aws_session_token`` / ``aws_profile_name`` from the config, else the standard AWS chain
  (environment, shared profile, web identity, container and instance metadata) through botocore.
- ``vertex_ai``: ``vertex_project`` (else ``VERTEXAI_PROJECT``, ``GOOGLE_CLOUD_PROJECT``, or the
  service-account file's ``project_id``), ``vertex_location`` (else ``VERTEXAI_LOCATION``, else
  ``us-central1`` as LiteLLM), ``vertex_credentials`` (a service-account file or its JSON; else
  ``VERTEXAI_CREDENTIALS``; else Application Default Credentials through google-auth).
- ``gemini``: ``api_key`` (else ``GEMINI_API_KEY``, ``GOOGLE_API_KEY``), sent as ``x-goog-api-key``.

A deployment that needs an optional extra (botocore for SigV4, google-auth for Vertex tokens)
that is not installed is a configuration error naming the ``pip install`` that fixes it.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import NamedTuple

import orjson

from keystile.config.model import AwsCredentials, VertexTarget
from keystile.config.source import Fields

BEDROCK_FIELDS = frozenset(
    {"aws_region_name", "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_profile_name",
     "aws_bedrock_runtime_endpoint"}
)
VERTEX_FIELDS = frozenset({"vertex_project", "vertex_location", "vertex_credentials"})
CLOUD_FIELDS = BEDROCK_FIELDS | VERTEX_FIELDS
GEMINI_API_BASE = "https://generativelanguage.googleapis.com"
DEFAULT_VERTEX_LOCATION = "us-central1"
# Bedrock model ids of other families than Anthropic's, which InvokeModel's Messages body does not fit.
_OTHER_BEDROCK_FAMILY = re.compile(
    r"^(?:[a-z]{2,6}\.)?(?:amazon|meta|mistral|cohere|ai21|deepseek|openai|qwen|writer|twelvelabs|stability|luma|minimax|moonshot|google|nvidia)\."
)


class CloudTarget(NamedTuple):
    api_base: str | None
    api_key: str | None
    region: str | None = None
    aws: AwsCredentials | None = None
    vertex: VertexTarget | None = None


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def is_claude(model: str) -> bool:
    """A Vertex model id served by Anthropic's publisher (``claude-…``), rather than Google's (Gemini)."""
    return "claude" in model.lower()


def not_served(provider: str, model: str) -> str | None:
    """Why keystile cannot serve ``model`` on this cloud ``provider``, or None if it can."""
    if provider == "bedrock" and _OTHER_BEDROCK_FAMILY.match(model.lower()):
        return f"keystile serves Anthropic models on Bedrock (InvokeModel with a Messages body); {model!r} is not one"
    if provider == "vertex_ai" and "/" in model:
        return f"keystile serves Claude and Gemini models on Vertex AI, not {model!r}"
    return None


def bedrock_target(f: Fields, model: str) -> CloudTarget:
    source, env = f.source, f.source.env
    problem = not_served("bedrock", model)
    if problem is not None:
        source.problem(f.path + ("model",), problem)
    region = (
        f.string("region") or f.string("region_name") or f.string("aws_region_name")
        or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION_NAME") or None
    )
    api_base = f.string("api_base") or f.string("aws_bedrock_runtime_endpoint")
    if api_base is not None:
        api_base = api_base.rstrip("/")
    elif region:
        api_base = f"https://bedrock-runtime.{region}.amazonaws.com"
    else:
        source.problem(f.path + ("region",), "is required for bedrock (or api_base; or set AWS_REGION)")
    api_key = f.string("api_key")
    explicit = AwsCredentials(
        access_key_id=f.string("aws_access_key_id"),
        secret_access_key=f.string("aws_secret_access_key"),
        session_token=f.string("aws_session_token"),
        profile=f.string("aws_profile_name"),
    )
    signs = explicit != AwsCredentials()
    if api_key and signs:
        source.problem(f.path + ("api_key",), "give either a Bedrock API key or AWS credentials, not both")
    if (explicit.access_key_id is None) != (explicit.secret_access_key is None):
        source.problem(f.path + ("aws_access_key_id",), "aws_access_key_id and aws_secret_access_key go together")
    aws: AwsCredentials | None = None
    if api_key is None and not signs:
        api_key = env.get("AWS_BEARER_TOKEN_BEDROCK") or None
    if api_key is None:
        aws = explicit
        if not signs and env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
            aws = AwsCredentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env.get("AWS_SESSION_TOKEN") or None)
        if not has_module("botocore"):
            source.problem(
                f.path + ("provider",),
                "bedrock with AWS credentials (SigV4) needs botocore: pip install 'keystile[bedrock]' "
                "(or give a Bedrock API key: api_key or AWS_BEARER_TOKEN_BEDROCK)",
            )
    return CloudTarget(api_base, api_key, region, aws=aws)


def vertex_target(f: Fields) -> CloudTarget:
    source, env = f.source, f.source.env
    credentials = f.string("vertex_credentials") or env.get("VERTEXAI_CREDENTIALS") or None
    location = f.string("vertex_location") or f.string("region") or env.get("VERTEXAI_LOCATION") or DEFAULT_VERTEX_LOCATION
    project = f.string("vertex_project") or env.get("VERTEXAI_PROJECT") or env.get("GOOGLE_CLOUD_PROJECT") or None
    if project is None:
        project = _service_account_project(credentials or env.get("GOOGLE_APPLICATION_CREDENTIALS"))
    if project is None:
        source.problem(f.path + ("vertex_project",), "is required for vertex_ai (or VERTEXAI_PROJECT, or a service-account file)")
        project = ""
    api_base = f.string("api_base")
    if api_base is not None:
        api_base = api_base.rstrip("/").removesuffix("/v1")
    elif location == "global":
        api_base = "https://aiplatform.googleapis.com"
    else:
        api_base = f"https://{location}-aiplatform.googleapis.com"
    api_key = f.string("api_key")  # Vertex's API keys (express mode), sent as x-goog-api-key
    if api_key is None and not has_module("google.auth"):
        source.problem(f.path + ("provider",), "vertex_ai needs google-auth for its OAuth tokens: pip install 'keystile[vertex]'")
    return CloudTarget(api_base, api_key, location, vertex=VertexTarget(project, location, credentials))


def gemini_target(f: Fields, model: str = "") -> CloudTarget:
    env = f.source.env
    api_base = (f.string("api_base") or GEMINI_API_BASE).rstrip("/").removesuffix("/v1beta").removesuffix("/v1")
    api_key = f.string("api_key") or env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY") or None
    return CloudTarget(api_base, api_key)


def _service_account_project(credentials: str | None) -> str | None:
    """The ``project_id`` of a service-account JSON (a path, or the JSON itself), if readable."""
    if not credentials:
        return None
    try:
        text = credentials if credentials.lstrip().startswith("{") else Path(credentials).read_text()
        info = orjson.loads(text)
    except (OSError, orjson.JSONDecodeError, ValueError):
        return None
    project = info.get("project_id") if isinstance(info, dict) else None
    return project if isinstance(project, str) and project else None
