"""Where Bedrock and Vertex credentials come from, and that they are looked up and refreshed
off the request path: once for many requests, ahead of expiry, never one lookup per request."""

from __future__ import annotations

import json
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import anthropic
import pytest

from tests.integration.clouds import (
    AWS_KEY_ID,
    AWS_SECRET,
    AWS_TEMP_KEY_ID,
    AWS_TEMP_SECRET,
    AWS_TEMP_TOKEN,
    cloud_gateway,
    service_account,
)

BODY = {"max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def _ask(gateway, key: str, model: str) -> anthropic.types.Message:  # type: ignore[no-untyped-def]
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as client:
        return client.messages.create(model=model, **BODY)


def _bedrock(url: str, name: str, **auth: str) -> str:
    """One bedrock deployment of a ``models:`` list, with ``auth`` fields."""
    fields = {"name": name, "provider": "bedrock", "model": "anthropic.claude-haiku-4-5-20251001-v1:0", "region": "us-east-1", "api_base": url, **auth}
    return "  - " + "\n    ".join(f"{k}: {v}" for k, v in fields.items()) + "\n"


def test_aws_credentials_from_a_shared_profile_and_temporary_ones(upstream, tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[keystile-test]\naws_access_key_id = {AWS_KEY_ID}\naws_secret_access_key = {AWS_SECRET}\n"
        f"[temporary]\naws_access_key_id = {AWS_TEMP_KEY_ID}\naws_secret_access_key = {AWS_TEMP_SECRET}\naws_session_token = {AWS_TEMP_TOKEN}\n"
    )
    config = "models:\n" + _bedrock(upstream.url, "from-profile", aws_profile_name="keystile-test") + _bedrock(
        upstream.url, "temporary", aws_profile_name="temporary"
    ) + _bedrock(upstream.url, "default-chain")
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_PROFILE": "keystile-test"}
    with cloud_gateway(config, env=env, workdir=tmp_path) as gw:
        key = gw.create_key()
        for model in ("from-profile", "temporary", "default-chain"):
            assert _ask(gw, key, model).content[0].text.startswith("Hello from keystile mock")
        sent = [dict(r["headers"]) for r in upstream.requests()]
        assert [h["authorization"].split("/")[0] for h in sent] == [
            f"AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}",
            f"AWS4-HMAC-SHA256 Credential={AWS_TEMP_KEY_ID}",
            f"AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}",  # AWS_PROFILE, as botocore's chain reads it
        ]
        assert sent[1]["x-amz-security-token"] == AWS_TEMP_TOKEN
        assert AWS_SECRET not in gw.log() and AWS_TEMP_SECRET not in gw.log()


def test_a_wrong_secret_is_refused_by_the_signature_check_and_said_so(upstream, tmp_path):
    config = "models:\n" + _bedrock(upstream.url, "wrong", aws_access_key_id=AWS_KEY_ID, aws_secret_access_key="not-the-secret")
    with cloud_gateway(config, workdir=tmp_path) as gw:
        with pytest.raises(anthropic.PermissionDeniedError) as info:
            _ask(gw, gw.create_key(), "wrong")
    assert "signature we calculated does not match" in info.value.message
    assert len(upstream.requests()) == 1  # a 403 is the client's problem: not retried


def test_no_aws_credentials_anywhere_fails_over_to_the_next_deployment(upstream, tmp_path):
    sa = service_account(upstream, tmp_path)
    config = "models:\n" + _bedrock(upstream.url, "claude") + textwrap.indent(textwrap.dedent(
        f"""\
        - name: claude-vertex
          provider: vertex_ai
          model: claude-haiku-4-5@20251001
          vertex_project: p
          vertex_credentials: {sa}
          api_base: {upstream.url}
        """
    ), "  ") + "router:\n  num_retries: 1\n  retry_backoff: 0.01s\n  fallbacks:\n    claude: [claude-vertex]\n"
    with cloud_gateway(config, workdir=tmp_path) as gw:
        key = gw.create_key()
        with anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0) as client:
            for _ in range(3):
                raw = client.messages.with_raw_response.create(model="claude", **BODY)
                assert raw.headers["x-keystile-deployment"] == "claude-vertex#0"
        assert "no AWS credentials found" in gw.log()
    assert not any(r["path"].startswith("/model/") for r in upstream.requests())


def test_application_default_credentials_from_google_application_credentials(upstream, tmp_path):
    sa = service_account(upstream, tmp_path, "adc.json")
    config = textwrap.dedent(
        f"""\
        models:
          - name: claude
            provider: vertex_ai
            model: claude-haiku-4-5@20251001
            vertex_location: global
            api_base: {upstream.url}
        """
    )
    with cloud_gateway(config, env={"GOOGLE_APPLICATION_CREDENTIALS": str(sa)}, workdir=tmp_path) as gw:
        _ask(gw, gw.create_key(), "claude")
    token, call = upstream.requests()
    assert token["path"] == "/token" and "grant_type=urn" in token["body"]
    # the project from the file, the global endpoint's path, the token just issued
    assert call["path"] == "/v1/projects/keystile-test/locations/global/publishers/anthropic/models/claude-haiku-4-5@20251001:rawPredict"
    assert dict(call["headers"])["authorization"].startswith("Bearer ya29.mock-")


def test_concurrent_first_requests_share_one_token_and_tokens_are_refreshed_before_they_expire(upstream, tmp_path):
    sa = service_account(upstream, tmp_path, "refresh.json")
    config = textwrap.dedent(
        f"""\
        models:
          - name: gemini
            provider: vertex_ai
            model: gemini-2.5-flash
            vertex_credentials: {sa}
            api_base: {upstream.url}
        """
    )
    upstream.set_token_lifetime(4)
    with cloud_gateway(config, workdir=tmp_path) as gw:
        key = gw.create_key()
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: _ask(gw, key, "gemini"), range(16)))
        assert all(a.content[0].text for a in answers)
        assert upstream.stats()["tokens_issued"] == 1
        # Keep asking: the token is replaced while it is still valid, so no request ever carries an
        # expired one (the mock would answer 401), and there is one fetch per token life, not per request.
        requests, deadline = 0, time.monotonic() + 30
        while upstream.stats()["tokens_issued"] < 3 and time.monotonic() < deadline:
            assert _ask(gw, key, "gemini").content[0].text
            requests += 1
        assert upstream.stats()["tokens_issued"] == 3, "no refresh within 30 s"
        assert requests >= 10
        statuses = [r for r in upstream.requests() if r["path"] != "/token"]
        assert len(statuses) == 16 + requests
    tokens = {dict(r["headers"])["authorization"] for r in upstream.requests() if r["path"] != "/token"}
    assert len(tokens) >= 2  # a refreshed token took over (the last one may have arrived after the last request)


def test_a_google_token_endpoint_that_refuses_is_reported_and_not_hammered(upstream, tmp_path):
    sa = service_account(upstream, tmp_path, "refused.json")
    upstream.trust_service_account(json.loads(sa.read_text())["client_email"], _other_key())  # its signatures no longer match
    config = textwrap.dedent(
        f"""\
        models:
          - name: claude
            provider: vertex_ai
            model: claude-haiku-4-5@20251001
            vertex_project: p
            vertex_credentials: {sa}
            api_base: {upstream.url}
        router:
          num_retries: 0
        """
    )
    with cloud_gateway(config, workdir=tmp_path) as gw:
        key = gw.create_key()
        for _ in range(5):
            with pytest.raises(anthropic.APIStatusError) as info_:
                _ask(gw, key, "claude")
            assert info_.value.status_code == 502
        assert "CredentialsUnavailable" in gw.log() and "Invalid JWT Signature" in gw.log()
    # five requests, one lookup: a failed lookup is remembered for a few seconds
    assert [r["path"] for r in upstream.requests()] == ["/token"]


def _other_key():  # type: ignore[no-untyped-def]
    """A public key that does not belong to the service account."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
