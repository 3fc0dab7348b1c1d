"""The Authorizer: models, then budgets, then rate limits, answered from memory with the caller's clock."""

from __future__ import annotations

import asyncio

import pytest

from keystile.apiformat import ApiFormat
from keystile.auth import Identity
from keystile.errors import ErrorKind, GatewayError
from keystile.limits.authorize import Authorizer, Grant, per_model_limits, quota_headers, rate_checks
from keystile.limits.budgets import Ledger
from keystile.limits.ratelimit import LocalCounters
from keystile.limits.reservation import Reservation
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


# --- reservations: budgets and tpm hold each running request's worst case ----------------------


def admit_reserving(authorizer: Authorizer, who: Identity, reservation: Reservation, now: float = T0, model: str = "m") -> Grant:
    return asyncio.run(authorizer.admit(who, model, now, reserve=reservation))


def refused_reserving(authorizer: Authorizer, who: Identity, reservation: Reservation, now: float = T0) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        admit_reserving(authorizer, who, reservation, now)
    return caught.value


def test_concurrent_requests_cannot_spend_a_tiny_budget_many_times():
    # the figures: max_budget $0.0001, streams that each cost a few cents
    authorizer = Authorizer(Ledger(), LocalCounters())
    who = identity(key={"max_budget": 0.0001})
    running = admit_reserving(authorizer, who, Reservation(0.03, 2_000))
    for _ in range(49):
        error = refused_reserving(authorizer, who, Reservation(0.03, 2_000))
        assert error.status == 429 and error.kind is ErrorKind.RATE_LIMITED and dict(error.headers)["retry-after"] == "1"
        assert error.message.startswith("Budget fully reserved: the key has spent $0.0000 of its $0.0001 budget")
    authorizer.charge_now(running, 0.018, 1_500, T0 + 5)  # it cost less than its worst case
    error = refused_reserving(authorizer, who, Reservation(0.03, 2_000), T0 + 6)
    assert error.status == 400 and error.kind is ErrorKind.BUDGET_EXCEEDED  # spent: no longer a matter of waiting


def test_running_requests_overshoot_a_budget_by_at_most_one_worst_case():
    authorizer = Authorizer(Ledger(), LocalCounters())
    who = identity(key={"max_budget": 1.0}, team={"max_budget": 5.0})
    grants = []
    while True:
        try:
            grants.append(admit_reserving(authorizer, who, Reservation(0.3, 0)))
        except GatewayError as error:
            assert "fully reserved" in error.message
            break
    assert len(grants) == 4  # held 0, 0.3, 0.6, 0.9 when each was admitted: all under $1
    for grant in grants:
        authorizer.charge_now(grant, 0.3, 0, T0 + 1)  # every one costs its worst case
    assert authorizer.ledger.states[("key", "h" * 64)].spend == pytest.approx(1.2)  # $1 + less than one request
    assert authorizer.ledger.states[("key", "h" * 64)].held == 0.0
    assert authorizer.ledger.states[("team", "t")].held == 0.0


def test_tokens_are_held_in_every_tpm_scope_until_charged():
    authorizer = Authorizer(Ledger(), LocalCounters())
    who = identity(key={"tpm_limit": 100, "model_tpm_limit": {"m": 5_000}})
    running = admit_reserving(authorizer, who, Reservation(0.0, 2_000))
    for _ in range(19):  # the 20 concurrent 2,000-token streams: one runs
        error = refused_reserving(authorizer, who, Reservation(0.0, 2_000))
        assert error.status == 429 and "key tokens per minute limit (100)" in error.message
        assert dict(error.headers)["retry-after"] == "1"
    asyncio.run(authorizer.charge(running, 0.0, 40, T0 + 1))  # the hold gives way to the 40 tokens used
    again = admit_reserving(authorizer, who, Reservation(0.0, 2_000), T0 + 2)
    assert again.quota.tpm_limit == 100 and again.quota.tpm_remaining == 0  # 100 − 40 used − 2,000 held, at least 0
    authorizer.charge_now(again, 0.0, 2_000, T0 + 3)
    error = refused_reserving(authorizer, who, Reservation(0.0, 10), T0 + 4)
    assert dict(error.headers)["retry-after"] == "59"  # the window itself is full until the 2,000 leave, at T0 + 63


def test_a_refused_admission_gives_back_what_it_held():
    authorizer = Authorizer(Ledger(), LocalCounters())
    who = identity(key={"max_budget": 1.0, "rpm_limit": 1, "tpm_limit": 1_000})
    authorizer.charge_now(admit_reserving(authorizer, who, Reservation(0.5, 500)), 0.0, 0, T0)
    assert "requests per minute" in refused_reserving(authorizer, who, Reservation(0.5, 500), T0 + 1).message
    state = authorizer.ledger.states[("key", "h" * 64)]
    assert state.held == 0.0 and authorizer.counters._windows["key:" + "h" * 64].held == 0


def test_the_worst_case_is_worked_out_only_when_something_holds_it():
    authorizer = Authorizer(Ledger(), LocalCounters())
    calls: list[int] = []

    def reserve() -> Reservation:
        calls.append(1)
        return Reservation(0.1, 10)

    asyncio.run(authorizer.admit(identity(key={"rpm_limit": 5}), "m", T0, reserve=reserve))
    assert calls == []  # no budget, no tpm limit: nothing to hold
    grant = asyncio.run(authorizer.admit(identity(key={"max_budget": 5.0}), "m", T0, reserve=reserve))
    assert calls == [1] and grant.held_cost == 0.1


def test_a_grant_is_charged_once():
    authorizer = Authorizer(Ledger(), LocalCounters())
    who = identity(key={"max_budget": 1.0})
    grant = admit_reserving(authorizer, who, Reservation(0.2, 0))
    authorizer.charge_now(grant, 0.1, 0, T0)
    authorizer.charge_now(grant, 0.1, 0, T0)
    asyncio.run(authorizer.charge(grant, 0.1, 0, T0))
    assert authorizer.ledger.states[("key", "h" * 64)].spend == pytest.approx(0.1)


def test_a_client_that_leaves_during_admission_holds_nothing():
    class Stalled(LocalCounters):
        async def admit(self, checks, now, hold=0):  # type: ignore[no-untyped-def]
            raise asyncio.CancelledError  # the client disconnected while the shared counters answered

    authorizer = Authorizer(Ledger(), Stalled())
    who = identity(key={"max_budget": 1.0, "rpm_limit": 5})
    with pytest.raises(asyncio.CancelledError):
        admit_reserving(authorizer, who, Reservation(0.5, 0))
    assert authorizer.ledger.states[("key", "h" * 64)].held == 0.0


# --- per-model limits name what serves the request ----------------------------------------------


@pytest.mark.parametrize(
    ("limit", "model", "group", "applies"),
    [
        ("claude-sonnet-4-5", "claude-sonnet-4-5", "claude-sonnet-4-5", True),  # the group by its name
        ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-*", True),  # the escape
        ("claude-sonnet-4-5", "claude-sonnet-4-5-latest", "claude-*", True),
        ("claude-sonnet-4-5", "anthropic/claude-sonnet-4.5", "*", True),
        ("claude-sonnet-4-5", "Claude-Sonnet-4-5", "*", True),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5", "claude-sonnet-4-5", True),  # same model either way
        ("claude-*", "claude-haiku-4-5", "claude-*", True),  # a pattern group's name: all it serves
        ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-*", False),
        ("claude-sonnet-4-5", "claude-sonnet-4", "claude-*", False),
        ("claude-*", "claude-haiku-4-5", "haiku", False),  # served by another group
        ("fast", "fast", "fast", True),  # an alias group
        ("claude-haiku-4-5", "fast", "fast", False),  # the group's upstream model is not its name
    ],
)
def test_per_model_limits_apply_to_the_serving_group_and_the_model_it_serves(limit, model, group, applies):
    assert (per_model_limits([limit], model, group) == [limit]) is applies


def test_dated_spellings_share_one_per_model_count():
    authorizer = Authorizer(Ledger(), LocalCounters())
    who = identity(key={"model_rpm_limit": {"claude-sonnet-4-5": 2}})
    for model in ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5-latest"):
        asyncio.run(authorizer.admit(who, model, T0, group="claude-*"))
    with pytest.raises(GatewayError) as caught:
        asyncio.run(authorizer.admit(who, "claude-sonnet-4-5-20250929", T0, group="claude-*"))
    assert "key's 'claude-sonnet-4-5' requests per minute limit (2)" in caught.value.message
    asyncio.run(authorizer.admit(who, "claude-haiku-4-5", T0, group="claude-*"))  # another model: its own


def test_unreserve_gives_back_a_hold_whose_request_was_never_charged():
    authorizer = Authorizer(Ledger(), LocalCounters())
    who = identity(key={"max_budget": 1.0, "tpm_limit": 100})
    grant = admit_reserving(authorizer, who, Reservation(0.9, 90))
    assert grant.holding
    asyncio.run(authorizer.unreserve(grant))  # its accounting failed: nothing charged, nothing held
    assert not grant.holding
    assert authorizer.ledger.states[("key", "h" * 64)].held == 0.0
    assert authorizer.counters._windows["key:" + "h" * 64].held == 0
    authorizer.charge_now(grant, 0.5, 50, T0)  # and it cannot be charged afterwards
    assert authorizer.ledger.states[("key", "h" * 64)].spend == 0.0
    assert not Grant().holding
