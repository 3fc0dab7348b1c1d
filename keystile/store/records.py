"""The rows keystile keeps: virtual keys, users, teams and spend-log entries.

Keys, users and teams share the budget and rate-limit fields (``Limits``), because a key
inherits the limits of the user and team it belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

LIMIT_FIELDS = (
    "max_budget",
    "soft_budget",
    "budget_duration",
    "budget_reset_at",
    "spend",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
)


@dataclass(slots=True)
class KeyRecord:
    token_hash: str
    """SHA-256 hex of the full key string: the only form of a virtual key keystile stores."""
    key_name: str = ""
    """The key masked for display (``sk-ks-…a1b2``)."""
    key_alias: str | None = None
    models: list[str] = field(default_factory=list)
    max_budget: float | None = None
    soft_budget: float | None = None
    budget_duration: str | None = None
    budget_reset_at: float | None = None
    spend: float = 0.0
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    model_rpm_limit: dict[str, int] = field(default_factory=dict)
    model_tpm_limit: dict[str, int] = field(default_factory=dict)
    expires_at: float | None = None
    blocked: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    user_id: str | None = None
    team_id: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    key_id: str = ""
    """The key's stable id: its spend, budget, limits and spend-log rows are kept under it,
    whatever its current secret. The hash of the key's first secret (so a LiteLLM hash, or any
    key never regenerated, is its own id); the store fills it in when a key is inserted."""

    @property
    def id(self) -> str:
        return self.key_id or self.token_hash


@dataclass(slots=True)
class UserRecord:
    user_id: str
    user_alias: str | None = None
    user_email: str | None = None
    models: list[str] = field(default_factory=list)
    max_budget: float | None = None
    soft_budget: float | None = None
    budget_duration: str | None = None
    budget_reset_at: float | None = None
    spend: float = 0.0
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(slots=True)
class TeamRecord:
    team_id: str
    team_alias: str | None = None
    models: list[str] = field(default_factory=list)
    max_budget: float | None = None
    soft_budget: float | None = None
    budget_duration: str | None = None
    budget_reset_at: float | None = None
    spend: float = 0.0
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    blocked: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)
    """Member user ids, sorted."""
    created_at: float = 0.0
    updated_at: float = 0.0
    members_with_roles: list[TeamMember] = field(default_factory=list)
    """The members with their role (and e-mail, when the store read them); on insert, the
    roles to give ``members`` (a member not listed here is a ``user``)."""


TEAM_ROLES = ("admin", "user")
"""LiteLLM's team roles: an ``admin`` manages the team, a ``user`` is a member."""


@dataclass(slots=True)
class TeamMember:
    user_id: str
    role: str = "user"
    user_email: str | None = None


@dataclass(slots=True)
class SpendLogRow:
    request_id: str
    ts: float
    key_id: str | None
    """The key's stable id (``KeyRecord.key_id``); the master key's hash for the master key."""
    key_alias: str | None
    user_id: str | None
    team_id: str | None
    model: str
    """The model name the client asked for."""
    model_group: str | None
    """The model group that served it (differs from ``model`` after a fallback)."""
    deployment: str | None
    provider: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost: float
    status: int
    latency_ms: float
    stream: bool
    attempts: int = 1
    request_content: str | None = None
    response_content: str | None = None
    requests: int = 1
    """How many requests the row stands for: more than 1 only for a refusal that is sampled
    (a key being refused gets a row a minute with the count, not one row each)."""
    call_type: str | None = None
    """Which client API the request came in on, in LiteLLM's words (``anthropic_messages``, ``acompletion`` …)."""
    request_tags: list[str] | None = None
    """Tags the client attached (``x-keystile-tags`` / ``x-litellm-tags`` headers, ``metadata.tags``)."""


def column_names(record_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(record_type))
