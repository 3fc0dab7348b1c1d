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
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(slots=True)
class SpendLogRow:
    request_id: str
    ts: float
    token_hash: str | None
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


def column_names(record_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(record_type))
