"""The mock upstream's Bedrock and Vertex AI, checked with the clouds' own clients: boto3 signs and
reads Bedrock, google-auth gets its tokens, the Anthropic SDK's cloud clients talk to them — so
tests against the mock test what the real clouds would accept."""

from __future__ import annotations

import json
from typing import Iterator

import boto3
import botocore.exceptions
import google.auth.transport.requests
import httpx
import pytest
from anthropic import AnthropicBedrock, AnthropicVertex
from google.oauth2 import service_account as google_service_account

from keystile.testing.upstream import MockUpstreamThread, start_in_thread
from tests.integration.clouds import AWS_KEY_ID, AWS_SECRET, AWS_TEMP_KEY_ID, AWS_TEMP_SECRET, AWS_TEMP_TOKEN, service_account

BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 32, "messages": [{"role": "user", "content": "Hi there"}]}
MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstreamThread]:
    _, handle = start_in_thread()
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def clean(upstream: MockUpstreamThread) -> None:
    upstream.reset()


def runtime(upstream: MockUpstreamThread, key_id: str = AWS_KEY_ID, secret: str = AWS_SECRET, token: str | None = None):  # type: ignore[no-untyped-def]
    return boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=upstream.url,
        aws_access_key_id=key_id, aws_secret_access_key=secret, aws_session_token=token,
    )


def test_boto3_signed_requests_are_accepted_and_read_back(upstream):
    answer = json.loads(runtime(upstream).invoke_model(modelId=MODEL, body=json.dumps(BODY))["body"].read())
    assert answer["content"][0]["text"] == "Hello from keystile mock. You said: Hi there"
    # and with temporary credentials (the session token is part of what is signed)
    stream = runtime(upstream, AWS_TEMP_KEY_ID, AWS_TEMP_SECRET, AWS_TEMP_TOKEN).invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(BODY))
    events = [json.loads(event["chunk"]["bytes"]) for event in stream["body"]]
    assert [e["type"] for e in events][:2] == ["message_start", "content_block_start"] and events[-1]["type"] == "message_stop"
    assert events[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] > 0
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    assert text == "Hello from keystile mock. You said: Hi there"


@pytest.mark.parametrize(
    ("key_id", "secret", "code"),
    [(AWS_KEY_ID, "wrong-secret", "InvalidSignatureException"), ("AKIANOTKNOWN00000000", AWS_SECRET, "UnrecognizedClientException")],
)
def test_a_bad_signature_is_refused_as_aws_refuses_it(upstream, key_id, secret, code):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        runtime(upstream, key_id, secret).invoke_model(modelId=MODEL, body=json.dumps(BODY))
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_a_signed_request_whose_body_changed_is_refused(upstream):
    client = runtime(upstream)
    client.meta.events.register("before-send.bedrock-runtime.InvokeModel", _tamper)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.invoke_model(modelId=MODEL, body=json.dumps(BODY))
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"


def _tamper(request, **_):  # type: ignore[no-untyped-def]
    request.body = request.body.replace(b"Hi there", b"Hi THERE")


def test_bodies_bedrock_refuses_are_refused(upstream):
    client = runtime(upstream)
    for body, message in [
        ({**BODY, "model": MODEL}, "extraneous key [model]"),
        ({k: v for k, v in BODY.items() if k != "anthropic_version"}, "anthropic_version"),
        ({**BODY, "anthropic_beta": ["oauth-2025-04-20"]}, "invalid beta flag"),
    ]:
        with pytest.raises(botocore.exceptions.ClientError) as info:
            client.invoke_model(modelId=MODEL, body=json.dumps(body))
        assert info.value.response["Error"]["Code"] == "ValidationException" and message in info.value.response["Error"]["Message"]


def test_the_anthropic_sdks_bedrock_client_with_an_api_key(upstream):
    with AnthropicBedrock(api_key="a-bedrock-api-key", base_url=upstream.url, aws_region="us-east-1", max_retries=0) as client:
        with client.messages.stream(model=MODEL, max_tokens=32, messages=[{"role": "user", "content": "Hi there"}]) as stream:
            assert stream.get_final_text() == "Hello from keystile mock. You said: Hi there"
    assert dict(upstream.requests()[-1]["headers"])["authorization"] == "Bearer a-bedrock-api-key"


def test_google_auth_gets_short_lived_tokens_that_vertex_accepts_until_they_expire(upstream, tmp_path):
    path = service_account(upstream, tmp_path)
    credentials = google_service_account.Credentials.from_service_account_file(
        str(path), scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    upstream.set_token_lifetime(3600)
    credentials.refresh(google.auth.transport.requests.Request())
    assert credentials.token.startswith("ya29.mock-") and upstream.stats()["tokens_issued"] == 1
    with AnthropicVertex(credentials=credentials, base_url=f"{upstream.url}/v1", region="us-east5", project_id="p", max_retries=0) as client:
        message = client.messages.create(model="claude-sonnet-4-5@20250929", max_tokens=32, messages=[{"role": "user", "content": "Hi there"}])
        assert message.content[0].text == "Hello from keystile mock. You said: Hi there"
        assert client.messages.count_tokens(model="claude-sonnet-4-5@20250929", messages=[{"role": "user", "content": "Hi there"}]).input_tokens > 0
    url = f"{upstream.url}/v1/projects/p/locations/us-east5/publishers/google/models/gemini-2.5-pro:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi there"}]}]}
    assert httpx.post(url, json=body, headers={"authorization": f"Bearer {credentials.token}"}).status_code == 200
    refused = httpx.post(url, json=body, headers={"authorization": "Bearer ya29.made-up"})
    assert refused.status_code == 401 and refused.json()["error"]["status"] == "UNAUTHENTICATED"


def test_an_assertion_signed_with_another_key_gets_no_token(upstream, tmp_path):
    path = service_account(upstream, tmp_path, "one.json")
    other = service_account(upstream, tmp_path, "two.json")
    info = json.loads(path.read_text())
    info["private_key"] = json.loads(other.read_text())["private_key"]  # one's email, two's key
    credentials = google_service_account.Credentials.from_service_account_info(info, scopes=["https://www.googleapis.com/auth/cloud-platform"])
    with pytest.raises(Exception, match="invalid_grant"):
        credentials.refresh(google.auth.transport.requests.Request())
