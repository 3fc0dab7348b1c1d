"""Credential resolution as a pure function, and authentication on top of it: every row of DESIGN.md's table."""

from __future__ import annotations

import asyncio
import time

import pytest

from keystile.auth import Authenticator, CachedKey, hash_key
from keystile.credentials import (
    Candidate,
    UpstreamCredentialKind,
    bearer_value,
    custom_header_value,
    mask,
    resolve_credentials,
)
from keystile.errors import ErrorKind, GatewayError
from keystile.store.records import KeyRecord

OAUTH = "sk-ant-oat01-abcdefghijklmnopqrstuvwxyz"
ANTHROPIC_KEY = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz"
KEY_A = "sk-ks-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
KEY_B = "sk-ks-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
BLOCKED = "sk-ks-blockedblockedblockedblocked00"
EXPIRED = "sk-ks-expiredexpiredexpiredexpired00"
UNKNOWN = "sk-unknown-0000000000000000"
MASTER = "sk-ks-master-000000000000000000000"


def headers(**named: str) -> list[tuple[bytes, bytes]]:
    return [(name.replace("_", "-").encode(), value.encode()) for name, value in named.items()]


# --- resolve_credentials: headers → candidates + upstream credential ---------------------------

RESOLVE = [
    # (case, headers, candidate sources/values, upstream kind, examined)
    ("nothing", {}, [], None, ()),
    ("x-api-key", {"x_api_key": KEY_A}, [("x-api-key", KEY_A)], None, ("x-api-key",)),
    ("bearer", {"authorization": f"Bearer {KEY_A}"}, [("authorization", KEY_A)], None, ("authorization",)),
    ("lowercase bearer", {"authorization": f"bearer {KEY_A}"}, [("authorization", KEY_A)], None, ("authorization",)),
    ("bearer with extra spaces", {"authorization": f"Bearer    {KEY_A}  "}, [("authorization", KEY_A)], None, ("authorization",)),
    ("bare token", {"authorization": KEY_A}, [("authorization", KEY_A)], None, ("authorization",)),
    ("basic auth carries no key", {"authorization": "Basic dXNlcjpwYXNz"}, [], None, ("authorization",)),
    ("empty bearer", {"authorization": "Bearer "}, [], None, ("authorization",)),
    (
        "seed: OAuth bearer + key in x-api-key",
        {"authorization": f"Bearer {OAUTH}", "x_api_key": KEY_A},
        [("x-api-key", KEY_A)],
        UpstreamCredentialKind.ANTHROPIC_OAUTH,
        ("authorization", "x-api-key"),
    ),
    (
        "Anthropic API key bearer + key in x-api-key",
        {"authorization": f"Bearer {ANTHROPIC_KEY}", "x_api_key": KEY_A},
        [("x-api-key", KEY_A)],
        UpstreamCredentialKind.ANTHROPIC_API_KEY,
        ("authorization", "x-api-key"),
    ),
    ("OAuth alone", {"authorization": f"Bearer {OAUTH}"}, [], UpstreamCredentialKind.ANTHROPIC_OAUTH, ("authorization",)),
    ("OAuth in x-api-key, key as bearer", {"x_api_key": OAUTH, "authorization": f"Bearer {KEY_A}"}, [("authorization", KEY_A)], UpstreamCredentialKind.ANTHROPIC_OAUTH, ("authorization", "x-api-key")),
    (
        "every header, in precedence order",
        {"x_goog_api_key": "g" * 20, "x_api_key": "x" * 20, "api_key": "a" * 20, "authorization": f"Bearer {'b' * 20}", "x_litellm_api_key": "l" * 20, "x_keystile_key": "k" * 20},
        [("x-keystile-key", "k" * 20), ("x-litellm-api-key", "l" * 20), ("authorization", "b" * 20), ("api-key", "a" * 20), ("x-api-key", "x" * 20), ("x-goog-api-key", "g" * 20)],
        None,
        ("x-keystile-key", "x-litellm-api-key", "authorization", "api-key", "x-api-key", "x-goog-api-key"),
    ),
    ("unrelated headers ignored", {"content_type": "application/json", "x_api_key": KEY_A, "cookie": "a=b"}, [("x-api-key", KEY_A)], None, ("x-api-key",)),
    ("values trimmed", {"x_api_key": f"  {KEY_A}  "}, [("x-api-key", KEY_A)], None, ("x-api-key",)),
    # LiteLLM's Claude Code docs: ANTHROPIC_CUSTOM_HEADERS="x-litellm-api-key: Bearer sk-…"
    ("x-litellm-api-key with Bearer", {"x_litellm_api_key": f"Bearer {KEY_A}"}, [("x-litellm-api-key", KEY_A)], None, ("x-litellm-api-key",)),
    ("x-litellm-api-key bare", {"x_litellm_api_key": KEY_A}, [("x-litellm-api-key", KEY_A)], None, ("x-litellm-api-key",)),
    ("x-litellm-api-key lowercase bearer", {"x_litellm_api_key": f"bearer   {KEY_A} "}, [("x-litellm-api-key", KEY_A)], None, ("x-litellm-api-key",)),
    ("x-keystile-key with Bearer", {"x_keystile_key": f"Bearer {KEY_A}"}, [("x-keystile-key", KEY_A)], None, ("x-keystile-key",)),
    ("x-litellm-api-key empty Bearer", {"x_litellm_api_key": "Bearer "}, [], None, ("x-litellm-api-key",)),
    (
        "x-litellm-api-key Bearer OAuth kept aside",
        {"x_litellm_api_key": f"Bearer {OAUTH}", "x_api_key": KEY_A},
        [("x-api-key", KEY_A)],
        UpstreamCredentialKind.ANTHROPIC_OAUTH,
        ("x-litellm-api-key", "x-api-key"),
    ),
    (
        "Claude Code with ANTHROPIC_CUSTOM_HEADERS and its own login",
        {"authorization": f"Bearer {OAUTH}", "x_litellm_api_key": f"Bearer {KEY_A}"},
        [("x-litellm-api-key", KEY_A)],
        UpstreamCredentialKind.ANTHROPIC_OAUTH,
        ("x-litellm-api-key", "authorization"),
    ),
]


@pytest.mark.parametrize("case,named,candidates,upstream,examined", RESOLVE, ids=[row[0] for row in RESOLVE])
def test_resolve_credentials(case, named, candidates, upstream, examined):
    resolved = resolve_credentials(headers(**named))
    assert [(c.source, c.value) for c in resolved.candidates] == candidates
    assert (resolved.upstream.kind if resolved.upstream else None) is upstream
    assert resolved.examined == examined


def test_first_occurrence_of_a_repeated_header_counts():
    resolved = resolve_credentials([(b"x-api-key", KEY_A.encode()), (b"x-api-key", KEY_B.encode())])
    assert resolved.candidates == (Candidate("x-api-key", KEY_A),)


def test_gemini_query_key_ranks_after_every_header():
    resolved = resolve_credentials(headers(x_api_key=KEY_A), query_key=KEY_B)
    assert [c.value for c in resolved.candidates] == [KEY_A, KEY_B]
    assert resolve_credentials([], query_key=OAUTH).upstream.kind is UpstreamCredentialKind.ANTHROPIC_OAUTH


@pytest.mark.parametrize(
    "value,expected",
    [(f"Bearer {KEY_A}", KEY_A), (f"BEARER {KEY_A}", KEY_A), (f"Bearer\t{KEY_A}", KEY_A), ("Bearer", None), ("Basic abc", None), (KEY_A, KEY_A), ("", None)],
)
def test_bearer_value(value, expected):
    assert bearer_value(value) == expected


@pytest.mark.parametrize(
    "value,expected",
    [(f"Bearer {KEY_A}", KEY_A), (f"BEARER {KEY_A}", KEY_A), (f"Bearer\t{KEY_A}", KEY_A), (f"  {KEY_A} ", KEY_A),
     ("Bearer", None), ("bearer  ", None), ("", None), (KEY_A, KEY_A)],
)
def test_custom_header_value(value, expected):
    assert custom_header_value(value) == expected


def test_mask_reveals_only_a_prefix_and_the_last_four():
    assert mask(KEY_A) == "sk-ks-…aaaa"
    assert mask(OAUTH) == "sk-ant…wxyz"
    assert "short" not in mask("short")
    assert mask("x" * 60_000) == "xxx…xxxx"


def test_upstream_credential_repr_hides_the_secret():
    resolved = resolve_credentials(headers(authorization=f"Bearer {OAUTH}"))
    assert OAUTH not in repr(resolved) and OAUTH not in str(resolved.upstream)


# --- authenticate: the first candidate that is the master key or a usable key ------------------


class FakeCache:
    """The KeyCache's interface over a fixed dict (the real cache is tested through the server)."""

    def __init__(self, records: dict[str, KeyRecord]) -> None:
        self.records = {hash_key(raw): record for raw, record in records.items()}

    async def get(self, token_hash: str) -> CachedKey:
        return CachedKey(self.records.get(token_hash), None, None, float("inf"))


def authenticator() -> Authenticator:
    records = {
        KEY_A: KeyRecord(hash_key(KEY_A), key_alias="a"),
        KEY_B: KeyRecord(hash_key(KEY_B), key_alias="b"),
        BLOCKED: KeyRecord(hash_key(BLOCKED), key_alias="blocked", blocked=True),
        EXPIRED: KeyRecord(hash_key(EXPIRED), key_alias="expired", expires_at=time.time() - 60),
    }
    return Authenticator(FakeCache(records), hash_key(MASTER), time.time)  # type: ignore[arg-type]


# DESIGN.md's table, plus the master key and the neighbouring cases.
AUTHENTICATE = [
    ("x-api-key valid", None, KEY_A, "a"),
    ("bearer valid", f"Bearer {KEY_A}", None, "a"),
    ("seed: OAuth bearer, valid x-api-key", f"Bearer {OAUTH}", KEY_A, "a"),
    ("Anthropic key bearer, valid x-api-key", f"Bearer {ANTHROPIC_KEY}", KEY_A, "a"),
    ("valid A bearer, valid B x-api-key: A", f"Bearer {KEY_A}", KEY_B, "a"),
    ("unknown bearer, valid x-api-key", f"Bearer {UNKNOWN}", KEY_A, "a"),
    ("blocked bearer, valid x-api-key", f"Bearer {BLOCKED}", KEY_B, "b"),
    ("master key bearer", f"Bearer {MASTER}", None, "master"),
    ("master key in x-api-key", None, MASTER, "master"),
    ("OAuth only", f"Bearer {OAUTH}", None, "401: No gateway key"),
    ("nothing", None, None, "401: No gateway key"),
    ("blocked", f"Bearer {BLOCKED}", None, "401: is blocked"),
    ("expired", f"Bearer {EXPIRED}", None, "401: expired at"),
    ("unknown", f"Bearer {UNKNOWN}", None, "401: is not a valid keystile key"),
]


def test_x_litellm_api_key_with_bearer_authenticates_and_outranks_authorization():
    for value in (f"Bearer {KEY_A}", KEY_A):
        credentials = resolve_credentials(headers(x_litellm_api_key=value, authorization=f"Bearer {KEY_B}"))
        assert asyncio.run(authenticator().authenticate(credentials)).alias == "a"
    credentials = resolve_credentials(headers(x_litellm_api_key=f"Bearer {BLOCKED}"))
    with pytest.raises(GatewayError) as raised:
        asyncio.run(authenticator().authenticate(credentials))
    assert "is blocked" in raised.value.message and "x-litellm-api-key" in raised.value.message


@pytest.mark.parametrize("case,authorization,x_api_key,expected", AUTHENTICATE, ids=[row[0] for row in AUTHENTICATE])
def test_authenticate(case, authorization, x_api_key, expected):
    named = {}
    if authorization:
        named["authorization"] = authorization
    if x_api_key:
        named["x_api_key"] = x_api_key
    credentials = resolve_credentials(headers(**named))
    if expected.startswith("401"):
        with pytest.raises(GatewayError) as raised:
            asyncio.run(authenticator().authenticate(credentials))
        assert raised.value.kind is ErrorKind.AUTHENTICATION and raised.value.status == 401
        assert expected.split(": ", 1)[1] in raised.value.message
        for secret in (KEY_A, KEY_B, BLOCKED, EXPIRED, UNKNOWN, OAUTH, MASTER):
            assert secret not in raised.value.message
    else:
        identity = asyncio.run(authenticator().authenticate(credentials))
        assert identity.alias == expected


def test_401_names_the_headers_it_looked_at():
    credentials = resolve_credentials(headers(authorization=f"Bearer {OAUTH}", x_api_key=UNKNOWN))
    with pytest.raises(GatewayError) as raised:
        asyncio.run(authenticator().authenticate(credentials))
    message = raised.value.message
    assert "headers examined: authorization, x-api-key" in message
    assert "OAuth token" in message and mask(UNKNOWN) in message
