"""The Authorizer: models, then budgets, then rate limits, answered from memory with the caller's clock."""

from __future__ import annotations

import asyncio

import pytest

from keystile.apiformat import ApiFormat
from keystile.auth import Identity
from keystile.errors import ErrorKind, GatewayError
from keystile.limits.authorize import Authorizer, quota_headers, rate_checks
from keystile.limits.budgets import Ledger
from keystile.limits.ratelimit import LocalCounters
from keystile.store.records import KeyRecord, TeamRecord, UserRecord

T0 = 1_800_000_000.0


def identity(key: dict | None = None, user: dict | None = None, team: dict | None = None) -> Identity:
    record = KeyRecord(token_hash="h" * 64, user_id="u" if user is not None else None, team_id="t" if team is not None else None, **(key or {}))
    return Identity(
        token_hash=record.token_hash,
        source="x-api-key",
        key=record,
        user=UserRecord(user_id="u", **user) if user is not None else None,
        team=TeamRecord(team_id="t", **team) if team is not None else None,
    )


def admit(authorizer: Authorizer, who: Identity, now: float = T0, model: str = "m"):  # type: ignore[no-untyped-def]
    return asyncio.run(authorizer.admit(who, model, now))


def refusal(authorizer: Authorizer, who: Identity, now: float = T0, model: str = "m") -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        admit(authorizer, who, now, model)
    return caught.value


def test_master_key_is_never_limited():
    authorizer = Authorizer(Ledger(), LocalCounters())
    grant = admit(authorizer, Identity("m" * 64, "authorization", is_master=True))
    assert grant.entities == () and grant.slots == () and grant.quota is None


def test_models_of_key_team_and_user_all_apply():
    authorizer = Authorizer(Ledger(), LocalCounters())
    assert admit(authorizer, identity(key={"models": ["m", "n"]}), model="m").entities
    error = refusal(authorizer, identity(key={"models": ["m"]}, team={"models": ["n"]}), model="m")
    assert error.kind is ErrorKind.PERMISSION and error.status == 403 and "team (t)" in error.message
    assert admit(authorizer, identity(user={"models": ["all-proxy-models"]}), model="anything").entities


def test_budget_refusal_is_400_and_names_whose_budget():
    ledger = Ledger()
    authorizer = Authorizer(ledger, LocalCounters())
    who = identity(key={"max_budget": 5.0}, team={"max_budget": 1.0, "budget_duration": "1d"})
    grant = admit(authorizer, who)
    assert grant.entities == (("key", "h" * 64), ("team", "t"))
    asyncio.run(authorizer.charge(grant, 1.25, 100, T0))
    error = refusal(authorizer, who, T0 + 1)
    assert error.kind is ErrorKind.BUDGET_EXCEEDED and error.status == 400 and error.headers == []
    assert error.message.startswith("Budget exceeded: the team 't' has spent $1.2500 of its $1.0000 budget; it resets at ")
    assert error.body(ApiFormat.OPENAI)["error"]["code"] == "budget_exceeded"
    assert error.body(ApiFormat.ANTHROPIC)["error"]["type"] == "invalid_request_error"
    assert admit(authorizer, who, T0 + 86400).entities  # the team's day is over


def test_soft_budget_becomes_a_warning_on_the_grant():
    authorizer = Authorizer(Ledger(), LocalCounters())
    who = identity(key={"soft_budget": 1.0})
    asyncio.run(authorizer.charge(admit(authorizer, who), 2.0, 0, T0))
    assert admit(authorizer, who).warnings == ["key soft budget $1.0000 reached (spent $2.0000)"]


def test_rate_limit_refusal_is_429_with_retry_after_and_both_header_styles():
    authorizer = Authorizer(Ledger(), LocalCounters())
    who = identity(key={"rpm_limit": 2})
    admit(authorizer, who, T0)
    admit(authorizer, who, T0 + 15)
    error = refusal(authorizer, who, T0 + 20)
    assert error.kind is ErrorKind.RATE_LIMITED and error.status == 429
    headers = dict(error.headers)
    assert headers["retry-after"] == "40"
    assert headers["x-ratelimit-remaining-requests"] == "0" and headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert headers["x-ratelimit-limit-requests"] == "2" and headers["anthropic-ratelimit-requests-limit"] == "2"
    assert headers["x-ratelimit-reset-requests"] == "40s"
    assert admit(authorizer, who, T0 + 60).quota.rpm_remaining == 0  # windows follow the clock passed in


def test_tokens_charged_count_against_tpm():
    authorizer = Authorizer(Ledger(), LocalCounters())
    who = identity(key={"tpm_limit": 100, "model_tpm_limit": {"m": 50}})
    grant = admit(authorizer, who)
    assert grant.token_scopes == ("key:" + "h" * 64, "key:" + "h" * 64 + ":model:m")
    asyncio.run(authorizer.charge(grant, 0.0, 60, T0))
    error = refusal(authorizer, who, T0 + 1)
    assert "key's 'm' tokens per minute limit (50)" in error.message
    assert dict(error.headers)["anthropic-ratelimit-tokens-remaining"] == "0"
    assert admit(authorizer, who, T0 + 1, model="other").quota.tpm_remaining == 40


def test_parallel_slot_released_once():
    authorizer = Authorizer(Ledger(), LocalCounters())
    who = identity(team={"max_parallel_requests": 1})
    grant = admit(authorizer, who)
    assert "parallel requests limit (1)" in refusal(authorizer, who).message
    asyncio.run(authorizer.release(grant))
    asyncio.run(authorizer.release(grant))  # twice is harmless
    second = admit(authorizer, who)
    assert "parallel" in refusal(authorizer, who).message
    asyncio.run(authorizer.release(second))


def test_rate_checks_cover_key_model_user_and_team():
    who = identity(
        key={"rpm_limit": 10, "model_rpm_limit": {"m": 2}},
        user={"tpm_limit": 1000},
        team={"max_parallel_requests": 3},
    )
    checks = rate_checks(who, "m")
    assert [(c.scope.split(":")[0], c.label, c.rpm, c.tpm, c.parallel) for c in checks] == [
        ("key", "key", 10, None, None),
        ("key", "key's 'm'", 2, None, None),
        ("user", "user 'u'", None, 1000, None),
        ("team", "team 't'", None, None, 3),
    ]
    assert rate_checks(identity(), "m") == []


def test_success_quota_headers_in_the_clients_style():
    authorizer = Authorizer(Ledger(), LocalCounters())
    grant = admit(authorizer, identity(key={"rpm_limit": 5, "tpm_limit": 1000}))
    openai_style = {k.decode(): v.decode() for k, v in quota_headers(grant.quota, ApiFormat.OPENAI)}
    assert openai_style == {
        "x-ratelimit-limit-requests": "5",
        "x-ratelimit-remaining-requests": "4",
        "x-ratelimit-reset-requests": "60s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "1000",
        "x-ratelimit-reset-tokens": "60s",
    }
    anthropic_style = {k.decode(): v.decode() for k, v in quota_headers(grant.quota, ApiFormat.ANTHROPIC)}
    assert set(anthropic_style) == {
        f"anthropic-ratelimit-{kind}-{field}" for kind in ("requests", "tokens") for field in ("limit", "remaining", "reset")
    }
    assert anthropic_style["anthropic-ratelimit-requests-remaining"] == "4"
    assert quota_headers(None, ApiFormat.OPENAI) == []
