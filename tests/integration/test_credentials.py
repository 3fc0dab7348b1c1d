"""Every credential case of DESIGN.md through the real server, with raw HTTP and the real SDKs.

The seed bug: Claude Desktop sends its Anthropic OAuth token in Authorization *and* the
gateway key in x-api-key; LiteLLM answers 401. keystile must let it in by x-api-key.
"""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from tests.integration.harness import (
    CLIENT_ANTHROPIC_API_KEY,
    MASTER_KEY,
    OAUTH_TOKEN,
    UPSTREAM_ANTHROPIC_KEY,
    UPSTREAM_OPENAI_KEY,
    anthropic_body,
)

VERSION = {"anthropic-version": "2023-06-01"}


def post(gateway, headers: dict, body: dict | None = None, path: str = "/v1/messages") -> httpx.Response:
    return httpx.post(f"{gateway.url}{path}", json=body or anthropic_body(), headers={**VERSION, **headers}, timeout=10)


def seed_client(gateway, key: str, **headers: str) -> anthropic.Anthropic:
    """What Claude Desktop's gateway mode sends: the OAuth token as bearer, the gateway key in x-api-key.

    Current SDKs refuse api_key together with auth_token, so the key goes in as a header.
    """
    return anthropic.Anthropic(
        base_url=gateway.url,
        auth_token=OAUTH_TOKEN,
        max_retries=0,
        default_headers={"x-api-key": key, **headers},
    )


def alias_of(gateway, response: httpx.Response) -> str | None:
    """Which key a request was charged to, read back from the spend log."""
    logs = gateway.admin("GET", "/spend/logs", params={"limit": 1}).json()
    return logs[0]["key_alias"] if logs else None


@pytest.fixture(scope="module")
def keys(gateway):
    return {
        "a": gateway.create_key(key_alias="key-a"),
        "b": gateway.create_key(key_alias="key-b"),
        "blocked": gateway.create_key(key_alias="key-blocked", blocked=True),
        "expired": _expired_key(gateway),
    }


def _expired_key(gateway) -> str:
    raw = gateway.create_key(key_alias="key-expired")
    # Expire it through the admin API: a duration that has already passed is refused, so
    # move the expiry into the past with the smallest positive duration and wait it out.
    response = gateway.admin("POST", "/key/update", json={"key": raw, "duration": "1ms"})
    assert response.status_code == 200
    return raw


# (Authorization, x-api-key) → expected status and which key the request is charged to.
TABLE = [
    ("x-api-key only", None, "a", 200, "key-a"),
    ("bearer only", "Bearer {a}", None, 200, "key-a"),
    ("seed: OAuth in Authorization, key in x-api-key", f"Bearer {OAUTH_TOKEN}", "a", 200, "key-a"),
    ("Anthropic API key in Authorization, key in x-api-key", f"Bearer {CLIENT_ANTHROPIC_API_KEY}", "a", 200, "key-a"),
    ("two valid keys: Authorization wins", "Bearer {a}", "b", 200, "key-a"),
    ("unknown sk- key in Authorization, valid x-api-key", "Bearer sk-unknown-0000000000000000", "a", 200, "key-a"),
    ("lowercase bearer", "bearer {a}", None, 200, "key-a"),
    ("bearer with extra spaces", "Bearer    {a}", None, 200, "key-a"),
    ("blocked in Authorization, valid x-api-key", "Bearer {blocked}", "b", 200, "key-b"),
    ("OAuth only", f"Bearer {OAUTH_TOKEN}", None, 401, None),
    ("nothing", None, None, 401, None),
    ("blocked key", "Bearer {blocked}", None, 401, None),
    ("expired key", "Bearer {expired}", None, 401, None),
    ("unknown key", "Bearer sk-unknown-0000000000000000", None, 401, None),
]


@pytest.mark.parametrize("case,authorization,x_api_key,status,charged", TABLE, ids=[row[0] for row in TABLE])
def test_credential_table(gateway, keys, upstream, case, authorization, x_api_key, status, charged):
    headers = {}
    if authorization:
        headers["authorization"] = authorization.format(**keys)
    if x_api_key:
        headers["x-api-key"] = keys[x_api_key]
    response = post(gateway, headers)
    assert response.status_code == status, response.text
    if status == 200:
        gateway.admin("GET", "/spend/logs")  # flushes pending rows
        assert alias_of(gateway, response) == charged
    else:
        body = response.json()
        assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
        for secret in keys.values():
            assert secret not in response.text
        assert OAUTH_TOKEN not in response.text


def test_401_messages_say_why(gateway, keys):
    oauth_only = post(gateway, {"authorization": f"Bearer {OAUTH_TOKEN}"}).json()["error"]["message"]
    assert "No gateway key" in oauth_only and "OAuth" in oauth_only and "authorization" in oauth_only
    nothing = post(gateway, {}).json()["error"]["message"]
    assert "No gateway key" in nothing and "none present" in nothing
    blocked = post(gateway, {"authorization": f"Bearer {keys['blocked']}"}).json()["error"]["message"]
    assert "blocked" in blocked and keys["blocked"][-4:] in blocked and keys["blocked"] not in blocked
    expired = post(gateway, {"authorization": f"Bearer {keys['expired']}"}).json()["error"]["message"]
    assert "expired" in expired


@pytest.mark.parametrize(
    "header",
    ["x-keystile-key", "x-litellm-api-key", "api-key", "x-api-key", "x-goog-api-key"],
)
def test_every_credential_header(gateway, keys, header):
    assert post(gateway, {header: keys["a"]}).status_code == 200


def test_custom_header_outranks_authorization(gateway, keys):
    response = post(gateway, {"x-keystile-key": keys["b"], "authorization": f"Bearer {keys['a']}"})
    assert response.status_code == 200
    assert alias_of(gateway, response) == "key-b"


def test_master_key_works_everywhere(gateway):
    assert post(gateway, {"x-api-key": MASTER_KEY}).status_code == 200
    assert post(gateway, {"authorization": f"Bearer {MASTER_KEY}"}).status_code == 200


def test_openai_route_errors_are_openai_shaped(gateway):
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {OAUTH_TOKEN}"},
    )
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key" and "No gateway key" in error["message"]


def test_anthropic_sdk_seed_case(gateway, keys, upstream):
    """The Anthropic SDK sending the gateway key as api_key and, like Claude Desktop, an OAuth bearer."""
    client = seed_client(gateway, keys["a"])
    message = client.messages.create(**anthropic_body())
    assert message.content[0].text.startswith("Hello from keystile mock")
    received = upstream.requests()[-1]
    headers = dict(received["headers"])
    assert headers["x-api-key"] == UPSTREAM_ANTHROPIC_KEY
    assert "authorization" not in headers  # not opted in: the OAuth token stays at the gateway


def test_oauth_forwarded_only_with_opt_in_and_only_to_anthropic(gateway, keys, upstream):
    client = seed_client(gateway, keys["a"], **{"anthropic-beta": "prompt-caching-2024-07-31"})
    client.messages.create(**anthropic_body(model="claude-forward"))
    headers = dict(upstream.requests()[-1]["headers"])
    assert headers["authorization"] == f"Bearer {OAUTH_TOKEN}"
    assert "x-api-key" not in headers
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31,oauth-2025-04-20"

    # An OpenAI-type deployment with the same opt-in never receives the Anthropic token.
    oa = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=keys["a"], max_retries=0, default_headers={"x-api-key": OAUTH_TOKEN})
    oa.chat.completions.create(model="gpt-forward", messages=[{"role": "user", "content": "hi"}])
    received = upstream.requests()[-1]
    assert OAUTH_TOKEN not in str(received)
    assert dict(received["headers"])["authorization"] == f"Bearer {UPSTREAM_OPENAI_KEY}"


def test_gateway_keys_never_reach_the_upstream_or_the_log(gateway, keys, upstream):
    client = seed_client(gateway, keys["a"])
    client.messages.create(**anthropic_body())
    with client.messages.stream(**anthropic_body(model="claude-forward")) as stream:
        stream.until_done()
    oa = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=keys["b"], max_retries=0)
    oa.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    post(gateway, {"x-api-key": MASTER_KEY})
    post(gateway, {"authorization": f"Bearer {keys['blocked']}"})
    seen = str(upstream.requests())
    for secret in [*keys.values(), MASTER_KEY]:
        assert secret not in seen
    log = gateway.log()
    for secret in [*keys.values(), MASTER_KEY, OAUTH_TOKEN, CLIENT_ANTHROPIC_API_KEY, UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY]:
        assert secret not in log
