"""Authorize: may this identity call this model now? Models, budgets, then rate limits.

Everything is answered from memory (the identity's cached records, the ``Ledger``, the
``Counters``); a refusal is a ``GatewayError`` whose message names the limit that was hit.
A ``Grant`` carries what must be handed back or charged when the request ends: its
parallel slots, and the ``Reservation`` (worst-case cost and tokens) held in its budgets and
tokens-per-minute windows until ``charge`` replaces it with what the request really used.
Budget periods and rate-limit windows both run on the ``now`` the caller passes (the
gateway's injectable clock), so a test can move either forward without sleeping.

Per-model limits (a key's ``model_rpm_limit`` / ``model_tpm_limit``) apply to the model
group that serves the request: an entry counts every request its group serves when it
names the group (``claude-*`` included), and every request for that model when it names a
model — compared as the price table compares names, so a dated snapshot, ``-latest``, a
provider prefix or other capitals do not escape a limit on ``claude-sonnet-4-5``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Callable, Sequence

from keystile.accounting.pricing import canonical_model_name
from keystile.apiformat import ApiFormat
from keystile.auth import Identity
from keystile.errors import ErrorKind, GatewayError
from keystile.limits.budgets import BudgetState, BudgetVerdict, Entity, Ledger
from keystile.limits.ratelimit import Counters, LocalCounters, Quota, RateCheck
from keystile.limits.reservation import Reservation

if TYPE_CHECKING:
    from keystile.limits.redis_budgets import RedisBudgets, SharedHold, SharedRefusal

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
    held_cost: float = 0.0
    """USD this request holds in ``held_budgets`` until it is charged."""
    held_budgets: tuple[BudgetState, ...] = ()
    held_tokens: int = 0
    """Tokens this request holds in its tpm scopes (``token_scopes``) until it is charged."""
    token_hold: str | None = None
    """Where the counters hold them (``Admission.hold``)."""
    shared_hold: SharedHold | None = None
    """Room held in the shared (Redis) budgets until the request's cost is known."""
    charged: bool = False

    @property
    def holding(self) -> bool:
        """Holds a reservation that neither ``charge`` nor ``unreserve`` has given back yet."""
        return not self.charged and (bool(self.held_budgets) or self.token_hold is not None or self.shared_hold is not None)


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

    def _plan(self, identity: Identity, model: str, group: str | None, now: float) -> "_AdmissionPlan":
        """What admitting ``identity`` to ``model`` involves, worked out once per cached key entry."""
        plan = identity.memo.get(model)
        if plan is None or plan.group != group:
            try:
                self.check_model(identity, model)
                refusal = None
            except GatewayError as error:
                refusal = error
            entities = entities_of(identity)
            records = tuple(r for r in (identity.key, identity.user, identity.team) if r is not None)
            for entity, record in zip(entities, records):
                self.ledger.track(entity, record, now)  # new records: refresh the budget limits
            checks = rate_checks(identity, model, group)
            plan = _AdmissionPlan(refusal, entities, records, checks, tuple(c.scope for c in checks if c.tpm is not None), group)
            if len(identity.memo) < 256:  # model names are the client's choice: keep it bounded
                identity.memo[model] = plan
        else:
            states = self.ledger.states
            for entity, record in zip(plan.entities, plan.records):
                if entity not in states:  # forgotten after an admin change
                    self.ledger.track(entity, record, now)
        return plan

    async def admit(
        self,
        identity: Identity,
        model: str,
        now: float,
        *,
        group: str | None = None,
        reserve: Reservation | Callable[[], Reservation] | None = None,
    ) -> Grant:
        """Admit the request or raise the refusal.

        ``group``: the model group that serves ``model`` (per-model limits apply to it).
        ``reserve``: the request's worst case (or a function computing it, called only when the
        identity has a budget or a tpm limit to hold it in); None holds nothing.
        """
        if identity.is_master:
            return Grant()
        plan = self._plan(identity, model, group, now)
        if plan.refusal is not None:
            raise GatewayError(plan.refusal.kind, plan.refusal.message, param=plan.refusal.param)
        entities = plan.entities
        refusal, warnings, budgeted = self.ledger.screen(entities, now)
        if refusal is not None:
            raise self._budget_refusal(refusal, now)
        checks = plan.checks
        grant = Grant(entities, plan.token_scopes)  # (positional: entities, token_scopes)
        if warnings:
            grant.warnings = [f"{w.entity[0]} soft budget ${w.limit:.4f} reached (spent ${w.spend:.4f})" for w in warnings]
        reservation = None
        if reserve is not None and (budgeted is not None or plan.token_scopes):
            reservation = reserve() if callable(reserve) else reserve
            if budgeted is not None and reservation.cost > 0:
                Ledger.hold(budgeted, reservation.cost)
                grant.held_cost, grant.held_budgets = reservation.cost, tuple(budgeted)
        try:
            if self.shared_budgets is not None:
                grant.shared_hold = await self._reserve(entities, now, grant.held_cost)
            if checks:
                hold = reservation.tokens if reservation is not None and plan.token_scopes else 0
                counters = self.counters
                if type(counters) is LocalCounters:  # in-process: answered at once, no coroutine to await
                    admission = counters.admit_now(checks, now, hold)
                else:
                    admission = await counters.admit(checks, now, hold)
                if admission.refusal is not None:
                    retry = max(1, math.ceil(admission.refusal.retry_after))
                    raise GatewayError(
                        ErrorKind.RATE_LIMITED,
                        admission.refusal.message(),
                        headers=[("retry-after", str(retry)), *quota_headers_for_refusal(admission.refusal.check, admission.refusal.limit, retry)],
                    )
                grant.slots = admission.slots
                grant.quota = admission.quota
                if admission.hold is not None:
                    grant.held_tokens, grant.token_hold = hold, admission.hold
        except BaseException:  # refused, Redis failed, or the client left: give back what was held
            await self.unreserve(grant)
            raise
        return grant

    def _budget_refusal(self, refusal: BudgetVerdict, now: float) -> GatewayError:
        kind, ident = refusal.entity
        who = "key" if kind == "key" else f"{kind} {ident!r}"
        if refusal.held:
            return GatewayError(
                ErrorKind.RATE_LIMITED,
                f"Budget fully reserved: the {who} has spent ${refusal.spend:.4f} of its ${refusal.limit:.4f} budget "
                f"and requests still running hold the rest; retry after 1s.",
                headers=[("retry-after", "1")],
            )
        return GatewayError(
            ErrorKind.BUDGET_EXCEEDED,
            f"Budget exceeded: the {who} has spent ${refusal.spend:.4f} of its ${refusal.limit:.4f} budget"
            + _reset_note(self.ledger, refusal.entity, now),
        )

    async def unreserve(self, grant: Grant) -> None:
        """Give back what the grant holds, charging nothing: for a refused admission, or a request
        whose accounting failed before ``charge`` (a hold must never outlive its request)."""
        if grant.charged:
            return
        grant.charged = True
        if grant.held_budgets:
            Ledger.unhold(grant.held_budgets, grant.held_cost)
        if grant.shared_hold is not None:
            hold, grant.shared_hold = grant.shared_hold, None
            await self.shared_budgets.settle(hold, 0.0)  # type: ignore[union-attr]
        if grant.token_hold is not None and grant.token_scopes:
            await self.counters.add_tokens(grant.token_scopes, 0, 0.0, grant.token_hold, grant.held_tokens)

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

    async def _reserve(self, entities: tuple[Entity, ...], now: float, amount: float) -> SharedHold | None:
        outcome: SharedHold | SharedRefusal | None = await self.shared_budgets.reserve(self.ledger, entities, now, amount)  # type: ignore[union-attr]
        if outcome is None or not outcome.refused:
            return outcome  # type: ignore[return-value]
        held = outcome.reserved if outcome.held else 0.0  # type: ignore[union-attr]
        raise self._budget_refusal(BudgetVerdict(outcome.entity, outcome.spend, outcome.limit, False, held), now)  # type: ignore[union-attr]

    async def charge(self, grant: Grant, cost: float, tokens: int, now: float) -> None:
        """Settle the request: its holds give way to what it used — spend against budgets,
        tokens against tpm windows. Once per grant."""
        if grant.charged:
            return
        grant.charged = True
        if grant.held_budgets:
            Ledger.unhold(grant.held_budgets, grant.held_cost)
        if grant.entities:
            self.ledger.add(grant.entities, cost, now)
        if grant.shared_hold is not None:
            hold, grant.shared_hold = grant.shared_hold, None
            await self.shared_budgets.settle(hold, cost)  # type: ignore[union-attr]
        if grant.token_scopes and (tokens or grant.token_hold is not None):
            await self.counters.add_tokens(grant.token_scopes, tokens, now, grant.token_hold, grant.held_tokens)

    def charge_now(self, grant: Grant, cost: float, tokens: int, now: float) -> None:
        """``charge`` without a coroutine, when ``in_memory``."""
        if grant.charged:
            return
        grant.charged = True
        if grant.held_budgets:
            Ledger.unhold(grant.held_budgets, grant.held_cost)
        if grant.entities:
            self.ledger.add(grant.entities, cost, now)
        if grant.token_scopes and (tokens or grant.held_tokens):
            self.counters.add_tokens_now(grant.token_scopes, tokens, now, grant.held_tokens)  # type: ignore[attr-defined]


@dataclass(slots=True)
class _AdmissionPlan:
    refusal: GatewayError | None
    """The model is not allowed for this identity."""
    entities: tuple[Entity, ...]
    records: tuple[object, ...]
    checks: list[RateCheck]
    token_scopes: tuple[str, ...]
    group: str | None
    """The model group the plan was worked out for."""


def _model_lists(identity: Identity) -> list[tuple[str, list[str]]]:
    out = []
    if identity.key is not None and identity.key.models:
        out.append(("key", identity.key.models))
    if identity.team is not None and identity.team.models:
        out.append((f"key's team ({identity.team.team_id})", identity.team.models))
    if identity.user is not None and identity.user.models:
        out.append((f"key's user ({identity.user.user_id})", identity.user.models))
    return out


def rate_checks(identity: Identity, model: str, group: str | None = None) -> list[RateCheck]:
    """The rate limits a request for ``model``, served by ``group``, must fit (key, per-model, user, team)."""
    checks: list[RateCheck] = []
    key = identity.key
    if key is not None:
        if key.rpm_limit or key.tpm_limit or key.max_parallel_requests:
            checks.append(
                RateCheck(f"key:{identity.token_hash}", "key", key.rpm_limit, key.tpm_limit, key.max_parallel_requests)
            )
        if key.model_rpm_limit or key.model_tpm_limit:
            model_rpm, model_tpm = key.model_rpm_limit or {}, key.model_tpm_limit or {}
            for name in per_model_limits([*model_rpm, *model_tpm], model, group):
                rpm, tpm = model_rpm.get(name), model_tpm.get(name)
                if rpm or tpm:
                    checks.append(RateCheck(f"key:{identity.token_hash}:model:{name}", f"key's {name!r}", rpm, tpm))
    for kind, record in (("user", identity.user), ("team", identity.team)):
        if record is not None and (record.rpm_limit or record.tpm_limit or record.max_parallel_requests):
            ident = record.user_id if kind == "user" else record.team_id  # type: ignore[union-attr]
            checks.append(
                RateCheck(f"{kind}:{ident}", f"{kind} {ident!r}", record.rpm_limit, record.tpm_limit, record.max_parallel_requests)
            )
    return checks


def per_model_limits(names: Sequence[str], model: str, group: str | None) -> list[str]:
    """The per-model limit names (in first-seen order) that count a request for ``model`` served by ``group``.

    A name counts it when it is the serving group's name (a pattern group's ``claude-*``
    included: one count for everything the group serves), or when it names the same model
    as the request, once names are normalised (case, provider prefix, ``-latest``, date).
    """
    out: list[str] = []
    canonical = None
    for name in names:
        if name in out:
            continue
        if name == model or (group is not None and name == group):
            out.append(name)
            continue
        if len(model) > 256 or len(name) > 256:  # no model has such a name: compared exactly only
            continue
        if canonical is None:
            canonical = canonical_model_name(model)
        if "*" not in name and canonical_model_name(name) == canonical:
            out.append(name)
    return out


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
