"""Authorize: may this identity call this model now? Models, budgets, then rate limits.

Everything is answered from memory (the identity's cached records, the ``Ledger``, the
``Counters``); a refusal is a ``GatewayError`` whose message names the limit that was hit.
A ``Grant`` carries what must be handed back or charged when the request ends.
Budget periods and rate-limit windows both run on the ``now`` the caller passes (the
gateway's injectable clock), so a test can move either forward without sleeping.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Sequence

from keystile.apiformat import ApiFormat
from keystile.auth import Identity
from keystile.errors import ErrorKind, GatewayError
from keystile.limits.budgets import Entity, Ledger
from keystile.limits.ratelimit import Counters, LocalCounters, Quota, RateCheck

if TYPE_CHECKING:
    from keystile.limits.redis_budgets import RedisBudgets, Reservation, SharedRefusal

ALL_MODELS = frozenset({"*", "all-proxy-models"})


@dataclass(slots=True)
class Grant:
    entities: tuple[Entity, ...] = ()
    """Whose budgets this request is charged to."""
    token_scopes: tuple[str, ...] = ()
    """Scopes whose tokens-per-minute window counts this request's tokens."""
    slots: tuple[str, ...] = ()
    quota: Quota | None = None
    warnings: list[str] = field(default_factory=list)
    released: bool = False
    reservation: Reservation | None = None
    """Room held in the shared (Redis) budgets until the request's cost is known."""


def entities_of(identity: Identity) -> tuple[Entity, ...]:
    out: list[Entity] = []
    if identity.key is not None:
        out.append(("key", identity.token_hash))
    if identity.user is not None:
        out.append(("user", identity.user.user_id))
    if identity.team is not None:
        out.append(("team", identity.team.team_id))
    return tuple(out)


def model_allowed(allowed: Sequence[str], model: str) -> bool:
    """Empty means every model; entries may be patterns such as ``claude-*``."""
    if not allowed or model in allowed or not ALL_MODELS.isdisjoint(allowed):
        return True
    return any("*" in pattern and fnmatchcase(model, pattern) for pattern in allowed)


class Authorizer:
    def __init__(self, ledger: Ledger, counters: Counters, shared_budgets: RedisBudgets | None = None) -> None:
        self.ledger = ledger
        self.counters = counters
        self.shared_budgets = shared_budgets
        """Set when instances share Redis: budgets are then also checked, and reserved, there."""

    def check_model(self, identity: Identity, model: str) -> None:
        for owner, allowed in _model_lists(identity):
            if not model_allowed(allowed, model):
                raise GatewayError(
                    ErrorKind.PERMISSION,
                    f"This {owner} may not use model {model!r}. Allowed: {', '.join(sorted(allowed))}.",
                    param="model",
                )

    def _plan(self, identity: Identity, model: str, now: float) -> "_AdmissionPlan":
        """What admitting ``identity`` to ``model`` involves, worked out once per cached key entry."""
        plan = identity.memo.get(model)
        if plan is None:
            try:
                self.check_model(identity, model)
                refusal = None
            except GatewayError as error:
                refusal = error
            entities = entities_of(identity)
            records = tuple(r for r in (identity.key, identity.user, identity.team) if r is not None)
            for entity, record in zip(entities, records):
                self.ledger.track(entity, record, now)  # new records: refresh the budget limits
            checks = rate_checks(identity, model)
            plan = _AdmissionPlan(refusal, entities, records, checks, tuple(c.scope for c in checks if c.tpm is not None))
            if len(identity.memo) < 256:  # model names are the client's choice: keep it bounded
                identity.memo[model] = plan
        else:
            states = self.ledger.states
            for entity, record in zip(plan.entities, plan.records):
                if entity not in states:  # forgotten after an admin change
                    self.ledger.track(entity, record, now)
        return plan

    async def admit(self, identity: Identity, model: str, now: float) -> Grant:
        if identity.is_master:
            return Grant()
        plan = self._plan(identity, model, now)
        if plan.refusal is not None:
            raise GatewayError(plan.refusal.kind, plan.refusal.message, param=plan.refusal.param)
        entities = plan.entities
        refusal, warnings = self.ledger.check(entities, now)
        if refusal is not None:
            kind, ident = refusal.entity
            who = "key" if kind == "key" else f"{kind} {ident!r}"
            raise GatewayError(
                ErrorKind.BUDGET_EXCEEDED,
                f"Budget exceeded: the {who} has spent ${refusal.spend:.4f} of its ${refusal.limit:.4f} budget"
                + _reset_note(self.ledger, refusal.entity, now),
            )
        checks = plan.checks
        grant = Grant(entities, plan.token_scopes)  # (positional: entities, token_scopes)
        if warnings:
            grant.warnings = [f"{w.entity[0]} soft budget ${w.limit:.4f} reached (spent ${w.spend:.4f})" for w in warnings]
        if self.shared_budgets is not None:
            grant.reservation = await self._reserve(entities, now)
        if checks:
            counters = self.counters
            if type(counters) is LocalCounters:  # in-process: answered at once, no coroutine to await
                admission = counters.admit_now(checks, now)
            else:
                admission = await counters.admit(checks, now)
            if admission.refusal is not None:
                if grant.reservation is not None:
                    await self.shared_budgets.settle(grant.reservation, 0.0)  # type: ignore[union-attr]
                retry = max(1, math.ceil(admission.refusal.retry_after))
                raise GatewayError(
                    ErrorKind.RATE_LIMITED,
                    admission.refusal.message(),
                    headers=[("retry-after", str(retry)), *quota_headers_for_refusal(admission.refusal.check, admission.refusal.limit, retry)],
                )
            grant.slots = admission.slots
            grant.quota = admission.quota
        return grant

    @property
    def in_memory(self) -> bool:
        """Counters and budgets all live in this process: ``release_now`` and ``charge_now`` apply."""
        return type(self.counters) is LocalCounters and self.shared_budgets is None

    async def release(self, grant: Grant) -> None:
        if not grant.released:
            grant.released = True
            if grant.slots:
                await self.counters.release(grant.slots)

    def release_now(self, grant: Grant) -> None:
        """``release`` without a coroutine, when ``in_memory`` (the hot path's usual case)."""
        if not grant.released:
            grant.released = True
            if grant.slots:
                self.counters.release_now(grant.slots)  # type: ignore[attr-defined]

    async def _reserve(self, entities: tuple[Entity, ...], now: float) -> Reservation | None:
        outcome: Reservation | SharedRefusal | None = await self.shared_budgets.reserve(self.ledger, entities, now)  # type: ignore[union-attr]
        if outcome is None or not outcome.refused:
            return outcome  # type: ignore[return-value]
        kind, ident = outcome.entity
        who = "key" if kind == "key" else f"{kind} {ident!r}"
        if outcome.held:
            raise GatewayError(
                ErrorKind.RATE_LIMITED,
                f"Budget fully reserved: the {who} has spent ${outcome.spend:.4f} of its ${outcome.limit:.4f} budget "
                f"and requests still running hold the rest; retry after 1s.",
                headers=[("retry-after", "1")],
            )
        raise GatewayError(
            ErrorKind.BUDGET_EXCEEDED,
            f"Budget exceeded: the {who} has spent ${outcome.spend:.4f} of its ${outcome.limit:.4f} budget"
            + _reset_note(self.ledger, outcome.entity, now),
        )

    async def charge(self, grant: Grant, cost: float, tokens: int, now: float) -> None:
        """Record what the request used: spend against budgets, tokens against tpm windows."""
        if grant.entities:
            self.ledger.add(grant.entities, cost, now)
        if grant.reservation is not None:
            reservation, grant.reservation = grant.reservation, None
            await self.shared_budgets.settle(reservation, cost)  # type: ignore[union-attr]
        if grant.token_scopes and tokens:
            await self.counters.add_tokens(grant.token_scopes, tokens, now)

    def charge_now(self, grant: Grant, cost: float, tokens: int, now: float) -> None:
        """``charge`` without a coroutine, when ``in_memory``."""
        if grant.entities:
            self.ledger.add(grant.entities, cost, now)
        if grant.token_scopes and tokens:
            self.counters.add_tokens_now(grant.token_scopes, tokens, now)  # type: ignore[attr-defined]


@dataclass(slots=True)
class _AdmissionPlan:
    refusal: GatewayError | None
    """The model is not allowed for this identity."""
    entities: tuple[Entity, ...]
    records: tuple[object, ...]
    checks: list[RateCheck]
    token_scopes: tuple[str, ...]


def _model_lists(identity: Identity) -> list[tuple[str, list[str]]]:
    out = []
    if identity.key is not None and identity.key.models:
        out.append(("key", identity.key.models))
    if identity.team is not None and identity.team.models:
        out.append((f"key's team ({identity.team.team_id})", identity.team.models))
    if identity.user is not None and identity.user.models:
        out.append((f"key's user ({identity.user.user_id})", identity.user.models))
    return out


def rate_checks(identity: Identity, model: str) -> list[RateCheck]:
    checks: list[RateCheck] = []
    key = identity.key
    if key is not None:
        if key.rpm_limit or key.tpm_limit or key.max_parallel_requests:
            checks.append(
                RateCheck(f"key:{identity.token_hash}", "key", key.rpm_limit, key.tpm_limit, key.max_parallel_requests)
            )
        model_rpm = key.model_rpm_limit.get(model) if key.model_rpm_limit else None
        model_tpm = key.model_tpm_limit.get(model) if key.model_tpm_limit else None
        if model_rpm or model_tpm:
            checks.append(RateCheck(f"key:{identity.token_hash}:model:{model}", f"key's {model!r}", model_rpm, model_tpm))
    for kind, record in (("user", identity.user), ("team", identity.team)):
        if record is not None and (record.rpm_limit or record.tpm_limit or record.max_parallel_requests):
            ident = record.user_id if kind == "user" else record.team_id  # type: ignore[union-attr]
            checks.append(
                RateCheck(f"{kind}:{ident}", f"{kind} {ident!r}", record.rpm_limit, record.tpm_limit, record.max_parallel_requests)
            )
    return checks


def limit_headers(fmt: ApiFormat | None, kind: str, limit: int, remaining: int, reset: float, now: float) -> list[tuple[bytes, bytes]]:
    """Rate-limit headers for ``kind`` (``requests`` | ``tokens``) in ``fmt``'s style, or both styles for None.

    OpenAI style: ``x-ratelimit-{limit,remaining,reset}-<kind>`` with the reset as a duration;
    Anthropic style: ``anthropic-ratelimit-<kind>-{limit,remaining,reset}`` with an RFC 3339 time.
    """
    out: list[tuple[bytes, bytes]] = []
    limit_text, remaining_text = str(limit).encode(), str(max(remaining, 0)).encode()
    if fmt is not ApiFormat.ANTHROPIC:
        limit_name, remaining_name, reset_name = _OPENAI_LIMIT_NAMES[kind]
        out += [
            (limit_name, limit_text),
            (remaining_name, remaining_text),
            (reset_name, f"{math.ceil(max(reset, 0.0))}s".encode()),
        ]
    if fmt is not ApiFormat.OPENAI:
        limit_name, remaining_name, reset_name = _ANTHROPIC_LIMIT_NAMES[kind]
        out += [
            (limit_name, limit_text),
            (remaining_name, remaining_text),
            (reset_name, _rfc3339_bytes(now + max(reset, 0.0))),
        ]
    return out


# Header names by kind, encoded once (these headers go out on every response of a limited key).
_OPENAI_LIMIT_NAMES = {
    kind: (b"x-ratelimit-limit-" + kind.encode(), b"x-ratelimit-remaining-" + kind.encode(), b"x-ratelimit-reset-" + kind.encode())
    for kind in ("requests", "tokens")
}
_ANTHROPIC_LIMIT_NAMES = {
    kind: tuple(b"anthropic-ratelimit-" + kind.encode() + suffix for suffix in (b"-limit", b"-remaining", b"-reset"))
    for kind in ("requests", "tokens")
}


def quota_headers_for_refusal(check: RateCheck, limit: str, retry: int) -> list[tuple[str, str]]:
    """Both header styles on a 429: the refusal is made before the client's format matters."""
    if limit == "rpm" and check.rpm is not None:
        headers = limit_headers(None, "requests", check.rpm, 0, retry, time.time())
    elif limit == "tpm" and check.tpm is not None:
        headers = limit_headers(None, "tokens", check.tpm, 0, retry, time.time())
    else:
        return []
    return [(name.decode(), value.decode()) for name, value in headers]


def quota_headers(quota: Quota | None, fmt: ApiFormat) -> list[tuple[bytes, bytes]]:
    """What remains of the tightest limits, in the client's style, on a successful response."""
    if quota is None:
        return []
    out: list[tuple[bytes, bytes]] = []
    now = time.time()
    if quota.rpm_limit is not None:
        out += limit_headers(fmt, "requests", quota.rpm_limit, quota.rpm_remaining or 0, quota.rpm_reset, now)
    if quota.tpm_limit is not None:
        out += limit_headers(fmt, "tokens", quota.tpm_limit, quota.tpm_remaining or 0, quota.tpm_reset, now)
    return out


_rfc3339_texts: dict[int, tuple[str, bytes]] = {}
"""Second → its RFC 3339 text: a response carries two reset times (requests, tokens) that move a
second at a time, so a handful of entries serve every response."""


def _rfc3339(ts: float) -> str:
    """RFC 3339 UTC to the second, remembered for recent seconds (it is on every response)."""
    return _rfc3339_cached(ts)[0]


def _rfc3339_bytes(ts: float) -> bytes:
    return _rfc3339_cached(ts)[1]


def _rfc3339_cached(ts: float) -> tuple[str, bytes]:
    second = int(ts)
    texts = _rfc3339_texts.get(second)
    if texts is None:
        if len(_rfc3339_texts) >= 64:
            _rfc3339_texts.clear()
        text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        texts = _rfc3339_texts[second] = (text, text.encode())
    return texts


def _reset_note(ledger: Ledger, entity: Entity, now: float) -> str:
    state = ledger.states.get(entity)
    if state is not None and state.reset_at is not None and state.period:
        return f"; it resets at {_rfc3339(state.reset_at)}."
    return "."
