"""What the cloud tests share: a test service account the mock upstream trusts, the test AWS
credentials it checks signatures against, and clients for each cloud surface of keystile."""

from __future__ import annotations

import json
from pathlib import Path

import google.oauth2.credentials
from anthropic import AnthropicBedrock, AnthropicVertex
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google import genai
from google.genai import types

from keystile.testing.clouds import AWS_TEST_CREDENTIALS
from tests.integration.harness import GatewayProcess

AWS_KEY_ID, AWS_TEMP_KEY_ID = list(AWS_TEST_CREDENTIALS)
AWS_SECRET = AWS_TEST_CREDENTIALS[AWS_KEY_ID][0]
AWS_TEMP_SECRET, AWS_TEMP_TOKEN = AWS_TEST_CREDENTIALS[AWS_TEMP_KEY_ID]
BEDROCK_API_KEY = "bedrock-api-key-SECRET-7777"
SERVICE_ACCOUNT_EMAIL = "keystile-test@keystile-test.iam.gserviceaccount.com"
_MACHINE_CLOUD_VARIABLES = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
    "AWS_BEARER_TOKEN_BEDROCK", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
    "GOOGLE_APPLICATION_CREDENTIALS", "VERTEXAI_PROJECT", "VERTEXAI_LOCATION", "VERTEXAI_CREDENTIALS",
    "GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_CLOUD_PROJECT",
)


def cloud_gateway(config: str, env: dict[str, str] | None = None, **kwargs) -> GatewayProcess:  # type: ignore[no-untyped-def]
    """A gateway that sees no cloud settings of this machine (and never waits for instance metadata),
    only ``env``."""
    gateway = GatewayProcess(config, **kwargs)
    for name in _MACHINE_CLOUD_VARIABLES:
        gateway.env.pop(name, None)
    gateway.env.update(
        {"AWS_EC2_METADATA_DISABLED": "true", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent"}
    )
    gateway.env.update(env or {})
    return gateway


def service_account(upstream, folder: Path, name: str = "sa.json") -> Path:  # type: ignore[no-untyped-def]
    """A service-account file whose token_uri is the mock's /token, with a fresh RSA key the mock checks."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    email = name.removesuffix(".json") + "-" + SERVICE_ACCOUNT_EMAIL
    upstream.trust_service_account(email, key.public_key())
    path = folder / name
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "keystile-test",
                "private_key_id": "test-key-1",
                "private_key": pem,
                "client_email": email,
                "client_id": "1",
                "token_uri": f"{upstream.url}/token",
            }
        )
    )
    return path


def bedrock_client(gateway, key: str) -> AnthropicBedrock:  # type: ignore[no-untyped-def]
    """The Anthropic SDK's Bedrock client, as Claude Code's Bedrock mode uses keystile (the key as a Bedrock API key)."""
    return AnthropicBedrock(api_key=key, base_url=f"{gateway.url}/bedrock", aws_region="us-east-1", max_retries=0)


def vertex_client(gateway, key: str) -> AnthropicVertex:  # type: ignore[no-untyped-def]
    return AnthropicVertex(
        access_token=key, base_url=f"{gateway.url}/vertex/v1", region="us-east5", project_id="my-project", max_retries=0
    )


def genai_client(gateway, key: str) -> genai.Client:  # type: ignore[no-untyped-def]
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=gateway.url, timeout=30_000))


def genai_vertex_client(gateway, key: str) -> genai.Client:  # type: ignore[no-untyped-def]
    """google-genai in Vertex mode: the key as the OAuth token it sends."""
    return genai.Client(
        vertexai=True,
        project="my-project",
        location="us-central1",
        credentials=google.oauth2.credentials.Credentials(token=key),
        http_options=types.HttpOptions(base_url=gateway.url, timeout=30_000),
    )
