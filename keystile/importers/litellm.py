"""``keystile import litellm``: a LiteLLM proxy's keys, users and teams, brought into keystile's store.

LiteLLM keeps a virtual key as the SHA-256 hex of the raw key (its ``token`` column), which
is how keystile stores keys too, so every key imported by its hash authenticates unchanged.
The LiteLLM database is only read (its ``LiteLLM_VerificationToken``, ``LiteLLM_UserTable``
and ``LiteLLM_TeamTable``, with ``LiteLLM_BudgetTable`` for budgets linked by ``budget_id``),
row by row as JSON so any LiteLLM schema version reads alike. Writes go through the store's
repository. What LiteLLM has and keystile does not (daily token limits, per-model budgets,
organizations …) is reported one line each; the rest of that record is still imported.

Running it again changes nothing that is already there: a record keystile already has is
left alone (``--update`` takes LiteLLM's values for what differs, spend excepted: keystile
has been counting since the first import).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from keystile.auth import hash_key
from keystile.limits.budgets import period_seconds
from keystile.store.records import KeyRecord, TeamRecord, UserRecord
from keystile.store.repository import Store

KEYS_TABLE = "LiteLLM_VerificationToken"
USERS_TABLE = "LiteLLM_UserTable"
TEAMS_TABLE = "LiteLLM_TeamTable"
BUDGETS_TABLE = "LiteLLM_BudgetTable"
MEMBERSHIP_TABLE = "LiteLLM_TeamMembership"
ORGANIZATIONS_TABLE = "LiteLLM_OrganizationTable"
END_USERS_TABLE = "LiteLLM_EndUserTable"

# LiteLLM's model-list words: "every model" is keystile's empty list; "the team's models" is
# what keystile enforces anyway, since a key obeys its team's list too.
_ALL_MODELS = frozenset({"all-proxy-models", "*"})
_TEAM_MODELS = "all-team-models"
_LIMITS = ("rpm_limit", "tpm_limit", "max_parallel_requests")
_TOKEN = re.compile(r"[0-9a-f]{64}")

# The fields compared to tell "already imported, unchanged" from "differs" (spend never is).
KEY_FIELDS = ("key_alias", "models", "max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit",
              "max_parallel_requests", "model_rpm_limit", "model_tpm_limit", "expires_at", "blocked", "user_id", "team_id")
USER_FIELDS = ("user_alias", "user_email", "models", "max_budget", "budget_duration", "rpm_limit", "tpm_limit",
               "max_parallel_requests")
TEAM_FIELDS = ("team_alias", "models", "max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit",
               "max_parallel_requests", "blocked")

# What keystile cannot carry over, by LiteLLM column: why, shown when the column is set.
_KEY_UNMAPPED = {
    "tpd_limit": "keystile has no daily token limit",
    "model_max_budget": "keystile has no per-model budgets",
    "budget_limits": "keystile has no per-model budgets",
    "budget_fallbacks": "keystile has no budget fallbacks",
    "aliases": "keystile has no per-key model aliases",
    "config": "keystile has no per-key LiteLLM config",
    "permissions": "keystile has no per-key permissions",
    "allowed_routes": "keystile keys reach the inference routes; admin routes take the master key",
    "allowed_cache_controls": "keystile does not cache responses",
    "router_settings": "keystile has no per-key router settings",
    "policies": "keystile has no policies",
    "access_group_ids": "keystile has no access groups",
    "object_permission_id": "keystile has no MCP, vector-store or agent permissions",
    "project_id": "keystile has no projects",
    "agent_id": "keystile has no agents",
    "auto_rotate": "keystile does not rotate keys on a schedule",
}
_USER_UNMAPPED = {
    "model_max_budget": "keystile has no per-model budgets",
    "allowed_cache_controls": "keystile does not cache responses",
    "policies": "keystile has no policies",
    "object_permission_id": "keystile has no MCP, vector-store or agent permissions",
}
_TEAM_UNMAPPED = {
    "tpd_limit": "keystile has no daily token limit",
    "model_max_budget": "keystile has no per-model budgets",
    "budget_limits": "keystile has no per-model budgets",
    "router_settings": "keystile has no per-team router settings",
    "team_member_permissions": "keystile has no team member permissions",
    "access_group_ids": "keystile has no access groups",
    "policies": "keystile has no policies",
    "default_team_member_models": "keystile has no per-member model lists",
    "model_id": "keystile has no team model aliases",
    "object_permission_id": "keystile has no MCP, vector-store or agent permissions",
    "allow_team_guardrail_config": "keystile runs no guardrails",
}
_BUDGET_UNMAPPED = {
    "tpd_limit": "keystile has no daily token limit",
    "model_max_budget": "keystile has no per-model budgets",
    "allowed_models": "keystile has no per-budget model lists",
}
_METADATA_UNMAPPED = {
    "guardrails": "keystile runs no guardrails",
    "prompts": "keystile has no prompt management",
}


class ImportFailed(Exception):
    """The LiteLLM database cannot be read (unreachable, or not a LiteLLM database)."""


# --- reading LiteLLM's database ------------------------------------------------------------------


@dataclass
class Snapshot:
    """The rows of a LiteLLM proxy database that matter to keystile, each a dict of its columns."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    teams: list[dict[str, Any]] = field(default_factory=list)
    budgets: dict[str, dict[str, Any]] = field(default_factory=dict)
    memberships: list[dict[str, Any]] = field(default_factory=list)
    organizations: list[dict[str, Any]] = field(default_factory=list)
    end_users: int = 0


def connect_arguments(url: str) -> tuple[str, dict[str, str]]:
    """(asyncpg DSN, server settings) for a LiteLLM ``DATABASE_URL``.

    Prisma's URL parameters (``schema``, ``connection_limit``, ``pool_timeout``,
    ``pgbouncer`` …) are not PostgreSQL's: ``schema`` becomes the search path, the rest go.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ImportFailed(f"expected a postgresql:// URL for LiteLLM's database, got {parts.scheme or url[:40]!r}")
    kept, settings = [], {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "schema":
            settings["search_path"] = value
        elif name.startswith("ssl") or name in ("target_session_attrs", "passfile", "host", "port", "user", "password", "dbname"):
            kept.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(kept))), settings


async def read_snapshot(url: str) -> Snapshot:
    """Read everything the import needs, in one read-only transaction."""
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - the postgres extra is part of every install but a bare one
        raise ImportFailed("reading a PostgreSQL database needs asyncpg: pip install 'keystile[postgres]'") from None
    dsn, settings = connect_arguments(url)
    try:
        conn = await asyncpg.connect(dsn, timeout=10, server_settings=settings or None)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ImportFailed(f"cannot connect to LiteLLM's database: {exc}") from None
    try:
        async with conn.transaction(readonly=True):
            present = {row[0] for row in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                "AND table_name = ANY($1::text[])",
                [KEYS_TABLE, USERS_TABLE, TEAMS_TABLE, BUDGETS_TABLE, MEMBERSHIP_TABLE, ORGANIZATIONS_TABLE, END_USERS_TABLE],
            )}
            if KEYS_TABLE not in present:
                raise ImportFailed(f"no {KEYS_TABLE} table here: this is not a LiteLLM proxy database (or give its ?schema=)")

            async def rows(table: str) -> list[dict[str, Any]]:
                if table not in present:
                    return []
                found = await conn.fetch(f'SELECT row_to_json(t)::text FROM "{table}" AS t')
                return [orjson.loads(row[0]) for row in found]

            snapshot = Snapshot(
                keys=await rows(KEYS_TABLE),
                users=await rows(USERS_TABLE),
                teams=await rows(TEAMS_TABLE),
                budgets={b["budget_id"]: b for b in await rows(BUDGETS_TABLE)},
                memberships=await rows(MEMBERSHIP_TABLE),
                organizations=await rows(ORGANIZATIONS_TABLE),
            )
            if END_USERS_TABLE in present:
                snapshot.end_users = int(await conn.fetchval(f'SELECT COUNT(*) FROM "{END_USERS_TABLE}"'))
    except asyncpg.PostgresError as exc:
        raise ImportFailed(f"cannot read LiteLLM's tables: {exc}") from None
    finally:
        await conn.close()
    for table in (snapshot.keys, snapshot.users, snapshot.teams):
        table.sort(key=lambda row: (row.get("created_at") or "", str(row.get("token") or row.get("user_id") or row.get("team_id"))))
    return snapshot


# --- mapping LiteLLM rows onto keystile records (pure) ------------------------------------------


@dataclass
class TeamImport:
    record: TeamRecord
    members: list[tuple[str, str]]
    """(user_id, role) with role ``admin`` or ``user``, as LiteLLM's ``members_with_roles`` says."""


@dataclass
class Plan:
    teams: list[TeamImport] = field(default_factory=list)
    users: list[UserRecord] = field(default_factory=list)
    keys: list[KeyRecord] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    """One line per thing keystile cannot carry over."""


def plan_import(snapshot: Snapshot, now: float) -> Plan:
    """keystile's records for a LiteLLM snapshot, and a line for everything that does not map."""
    plan = Plan()
    emails = {u["user_email"]: u["user_id"] for u in snapshot.users if u.get("user_email")}
    team_ids = {t["team_id"] for t in snapshot.teams}
    for row in snapshot.teams:
        plan.teams.append(_team(row, emails, now, plan.unmapped))
    teams = {t.record.team_id: t for t in plan.teams}
    for row in snapshot.users:
        plan.users.append(_user(row, now, plan.unmapped))
        for team_id in row.get("teams") or ():  # LiteLLM's other record of the same membership
            team = teams.get(team_id)
            if team is not None and all(uid != row["user_id"] for uid, _ in team.members):
                team.members.append((row["user_id"], "user"))
    for row in snapshot.keys:
        record = _key(row, snapshot.budgets, team_ids, now, plan.unmapped)
        if record is not None:
            plan.keys.append(record)
    for row in snapshot.memberships:
        if row.get("budget_id"):
            budget = snapshot.budgets.get(row["budget_id"], {})
            plan.unmapped.append(
                f"user {row['user_id']} in team {row['team_id']}: a member budget ({_describe_budget(budget)}) — "
                "keystile has no per-member team budgets"
            )
    for org in snapshot.organizations:
        budget = snapshot.budgets.get(org.get("budget_id") or "", {})
        plan.unmapped.append(
            f"organization {org.get('organization_alias') or org['organization_id']} ({org['organization_id']}): "
            f"keystile has no organizations; its teams, users and keys are imported without its budget and limits "
            f"({_describe_budget(budget)})"
        )
    if snapshot.end_users:
        plan.unmapped.append(
            f"{END_USERS_TABLE}: {snapshot.end_users} end users (budgets by the request's `user` field) — "
            "keystile has no end-user budgets"
        )
    return plan


def _team(row: dict[str, Any], emails: dict[str, str], now: float, unmapped: list[str]) -> TeamImport:
    label = f"team {row.get('team_alias') or row['team_id']} ({row['team_id']})"
    record = TeamRecord(
        team_id=row["team_id"],
        team_alias=row.get("team_alias"),
        models=_models(row.get("models"), label, unmapped, in_team=False),
        max_budget=row.get("max_budget"),
        soft_budget=row.get("soft_budget"),
        spend=float(row.get("spend") or 0.0),
        blocked=bool(row.get("blocked")),
        metadata=_metadata(row.get("metadata"), label, unmapped),
        created_at=_time(row.get("created_at")) or 0.0,
    )
    _limits(record, row, label, unmapped)
    _period(record, row, label, now, unmapped)
    _report_unmapped(row, _TEAM_UNMAPPED, label, unmapped)
    members: dict[str, str] = {}
    entries = row.get("members_with_roles") or []
    if isinstance(entries, dict):  # the column's default is {} rather than []
        entries = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        user_id = entry.get("user_id") or emails.get(entry.get("user_email") or "")
        role = "admin" if entry.get("role") == "admin" else "user"
        if not user_id:
            unmapped.append(f"{label}: member {entry.get('user_email') or entry!r} has no user id and no user with that email")
            continue
        if members.get(user_id) != "admin":
            members[user_id] = role
    for user_id in row.get("admins") or ():
        members[user_id] = "admin"
    for user_id in row.get("members") or ():
        members.setdefault(user_id, "user")
    return TeamImport(record, list(members.items()))


def _user(row: dict[str, Any], now: float, unmapped: list[str]) -> UserRecord:
    label = f"user {row['user_id']}"
    record = UserRecord(
        user_id=row["user_id"],
        user_alias=row.get("user_alias"),
        user_email=row.get("user_email"),
        models=_models(row.get("models"), label, unmapped, in_team=False),
        max_budget=row.get("max_budget"),
        spend=float(row.get("spend") or 0.0),
        metadata=_metadata(row.get("metadata"), label, unmapped),
        created_at=_time(row.get("created_at")) or 0.0,
    )
    _limits(record, row, label, unmapped)
    _period(record, row, label, now, unmapped)
    _report_unmapped(row, _USER_UNMAPPED, label, unmapped)
    role = row.get("user_role")
    if role in ("proxy_admin", "proxy_admin_viewer"):
        unmapped.append(
            f"{label}: LiteLLM role {role} — keystile's admin API takes the master key only; their keys still call models"
        )
    return record


def _key(row: dict[str, Any], budgets: dict[str, dict], team_ids: set[str], now: float, unmapped: list[str]) -> KeyRecord | None:
    token = str(row.get("token") or "")
    name = row.get("key_name") or ""
    shown = f"sk-…{name[-4:]}" if len(name) >= 4 else f"hash {token[:12]}"
    label = f"key {shown}" + (f" ({row['key_alias']})" if row.get("key_alias") else "")
    if _TOKEN.fullmatch(token):
        token_hash = token
    elif token.startswith("sk-"):  # very old LiteLLM versions stored the raw key
        token_hash = hash_key(token)
        shown = f"sk-…{token[-4:]}"
    else:
        unmapped.append(f"{label}: its token is neither a SHA-256 hash nor a raw key; not imported")
        return None
    metadata = _metadata(row.get("metadata"), label, unmapped)
    record = KeyRecord(
        token_hash=token_hash,
        key_name=shown,
        key_alias=row.get("key_alias"),
        models=_models(row.get("models"), label, unmapped, in_team=bool(row.get("team_id"))),
        max_budget=row.get("max_budget"),
        spend=float(row.get("spend") or 0.0),
        model_rpm_limit=_int_mapping(metadata.pop("model_rpm_limit", None), "model_rpm_limit", label, unmapped),
        model_tpm_limit=_int_mapping(metadata.pop("model_tpm_limit", None), "model_tpm_limit", label, unmapped),
        expires_at=_time(row.get("expires")),
        blocked=bool(row.get("blocked")),
        metadata=metadata,
        user_id=row.get("user_id"),
        team_id=row.get("team_id"),
        created_at=_time(row.get("created_at")) or 0.0,
    )
    _limits(record, row, label, unmapped)
    budget = budgets.get(row.get("budget_id") or "")
    if budget is not None:  # a budget linked by budget_id fills what the key itself leaves open
        record.soft_budget = budget.get("soft_budget")
        if record.max_budget is None:
            record.max_budget = budget.get("max_budget")
        for name in _LIMITS:
            if getattr(record, name) is None and budget.get(name) is not None:
                _limits(record, {name: budget[name]}, label, unmapped)
        if not row.get("budget_duration") and budget.get("budget_duration"):
            row = {**row, "budget_duration": budget["budget_duration"], "budget_reset_at": budget.get("budget_reset_at")}
        _report_unmapped(budget, _BUDGET_UNMAPPED, f"{label} (its budget {budget['budget_id']})", unmapped)
    _period(record, row, label, now, unmapped)
    _report_unmapped(row, _KEY_UNMAPPED, label, unmapped)
    key_type = row.get("key_type")
    if key_type and key_type not in ("llm_api", "default"):
        unmapped.append(f"{label}: key_type {key_type} — keystile keys call models; the admin API takes the master key")
    if record.team_id and record.team_id not in team_ids:
        unmapped.append(f"{label}: its team {record.team_id!r} is not in LiteLLM's team table; imported with the team id as is")
    return record


def _models(value: Any, label: str, unmapped: list[str], *, in_team: bool) -> list[str]:
    models = [m for m in (value or []) if isinstance(m, str)]
    if not _ALL_MODELS.isdisjoint(models):
        return []
    if in_team and _TEAM_MODELS in models:
        # keystile checks the team's list for every key of the team, which is what this meant
        models = [m for m in models if m != _TEAM_MODELS]
    return models


def _limits(record: Any, row: dict[str, Any], label: str, unmapped: list[str]) -> None:
    for name in _LIMITS:
        value = row.get(name)
        if value is None:
            continue
        if int(value) <= 0:
            # LiteLLM lets no request through a limit of 0; keystile reads 0 as "no limit".
            if hasattr(record, "blocked"):
                record.blocked = True
                unmapped.append(f"{label}: {name} is {value}, which lets no request through; imported as blocked")
            else:
                unmapped.append(f"{label}: {name} is {value}, which lets no request through; keystile has no such "
                                "limit for a user (block the user's keys instead)")
            continue
        setattr(record, name, int(value))


def _period(record: Any, row: dict[str, Any], label: str, now: float, unmapped: list[str]) -> None:
    duration = row.get("budget_duration")
    if not duration:
        return
    period = period_seconds(duration)
    if period is None:
        unmapped.append(f"{label}: budget_duration {duration!r} is not a period keystile understands; the budget never resets")
        return
    record.budget_duration = duration
    record.budget_reset_at = _time(row.get("budget_reset_at")) or now + period


def _metadata(value: Any, label: str, unmapped: list[str]) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            value = {}
    metadata = dict(value) if isinstance(value, dict) else {}
    for name, why in _METADATA_UNMAPPED.items():
        if metadata.get(name):
            unmapped.append(f"{label}: metadata.{name} {_short(metadata[name])} — {why}")
    return metadata


def _int_mapping(value: Any, name: str, label: str, unmapped: list[str]) -> dict[str, int]:
    if not value:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()):
        unmapped.append(f"{label}: metadata.{name} {_short(value)} is not a mapping of model to a number")
        return {}
    return {str(model): int(limit) for model, limit in value.items()}


def _report_unmapped(row: dict[str, Any], columns: dict[str, str], label: str, unmapped: list[str]) -> None:
    for column, why in columns.items():
        value = row.get(column)
        if value not in (None, False, "", [], {}):
            unmapped.append(f"{label}: {column} {_short(value)} — {why}")


def _describe_budget(budget: dict[str, Any]) -> str:
    parts = [f"{name} {budget[name]}" for name in ("max_budget", "soft_budget", *_LIMITS, "budget_duration") if budget.get(name) is not None]
    return ", ".join(parts) or "no limits set"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:77] + "…"


def _time(value: Any) -> float | None:
    """A LiteLLM timestamp (ISO text from row_to_json; Prisma stores UTC without a zone) → Unix seconds."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


# --- writing into keystile's store ---------------------------------------------------------------


@dataclass
class Outcome:
    """What the import did (or, dry, would do): one line per record touched, and the tallies."""

    lines: list[str] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=lambda: {"team": 0, "user": 0, "key": 0})
    updated: dict[str, int] = field(default_factory=lambda: {"team": 0, "user": 0, "key": 0})
    unchanged: dict[str, int] = field(default_factory=lambda: {"team": 0, "user": 0, "key": 0})
    differing: dict[str, int] = field(default_factory=lambda: {"team": 0, "user": 0, "key": 0})

    @property
    def changed(self) -> bool:
        return any(self.created.values()) or any(self.updated.values())


async def apply_plan(plan: Plan, store: Store, *, dry_run: bool = False, update: bool = False) -> Outcome:
    """Create what keystile lacks; leave what it has (or, with ``update``, take LiteLLM's values)."""
    out = Outcome()
    verb = "would create" if dry_run else "created"
    for team in plan.teams:
        record = team.record
        label = f"team {record.team_alias or record.team_id} ({record.team_id})"
        existing = await store.get_team(record.team_id)
        if existing is None:
            if not dry_run:
                await store.insert_team(_without_members(record))
                for user_id, role in team.members:
                    await store.add_team_member(record.team_id, user_id, role)
            out.created["team"] += 1
            out.lines.append(f"{verb} {label}, {len(team.members)} member(s)")
            continue
        missing = [(uid, role) for uid, role in team.members if uid not in existing.members]
        differences = _differences(existing, record, TEAM_FIELDS)
        if missing and not dry_run:
            for user_id, role in missing:
                await store.add_team_member(record.team_id, user_id, role)
        if missing:
            out.lines.append(f"{'would add' if dry_run else 'added'} {len(missing)} member(s) to {label}: {', '.join(u for u, _ in missing)}")
        await _settle(out, "team", label, differences, dry_run, update,
                      lambda c, tid=record.team_id: store.update_team(tid, c), changed=bool(missing))
    for user in plan.users:
        label = f"user {user.user_id}" + (f" ({user.user_email})" if user.user_email else "")
        existing_user = await store.get_user(user.user_id)
        if existing_user is None:
            if not dry_run:
                await store.insert_user(user)
            out.created["user"] += 1
            out.lines.append(f"{verb} {label}")
            continue
        differences = _differences(existing_user, user, USER_FIELDS)
        await _settle(out, "user", label, differences, dry_run, update, lambda c, uid=user.user_id: store.update_user(uid, c))
    taken: dict[str, str] = {}  # aliases given out during this run (a dry run writes nothing to ask)
    for key in plan.keys:
        label = f"key {key.key_name}" + (f" ({key.key_alias})" if key.key_alias else "")
        existing_key = await store.get_key(key.token_hash)
        if key.key_alias:
            holder = taken.get(key.key_alias)
            if holder is None:
                found = await store.find_key_by_alias(key.key_alias)
                holder = found.token_hash if found is not None else None
            if holder is not None and holder != key.token_hash:
                out.lines.append(f"{label}: alias {key.key_alias!r} is already another keystile key's; imported without an alias")
                key.key_alias = None
            else:
                taken[key.key_alias] = key.token_hash
        if existing_key is None:
            if not dry_run:
                await store.insert_key(key)
            out.created["key"] += 1
            state = " — blocked" if key.blocked else (" — expired" if key.expires_at and key.expires_at <= time.time() else "")
            out.lines.append(f"{verb} {label}{state}")
            continue
        differences = _differences(existing_key, key, KEY_FIELDS)
        await _settle(out, "key", label, differences, dry_run, update, lambda c, h=key.token_hash: store.update_key(h, c))
    return out


async def _settle(out: Outcome, kind: str, label: str, differences: dict[str, tuple[Any, Any]], dry_run: bool,
                  update: bool, write: Callable[[dict[str, Any]], Awaitable[Any]], *, changed: bool = False) -> None:
    """Tally a record keystile already has; with ``update``, take LiteLLM's values where they differ."""
    if differences:
        said = "; ".join(f"{name} {_short(ours)} → {_short(theirs)}" for name, (ours, theirs) in differences.items())
        if update:
            if not dry_run:
                await write({name: theirs for name, (_, theirs) in differences.items()})
            out.lines.append(f"{'would update' if dry_run else 'updated'} {label}: {said}")
            changed = True
        else:
            out.differing[kind] += 1
            out.lines.append(f"{label} is already in keystile and differs from LiteLLM ({said}); left as it is")
    if changed:
        out.updated[kind] += 1
    elif not differences:
        out.unchanged[kind] += 1


def _differences(ours: Any, theirs: Any, names: Iterable[str]) -> dict[str, tuple[Any, Any]]:
    out = {}
    for name in names:
        a, b = getattr(ours, name), getattr(theirs, name)
        if isinstance(a, float) or isinstance(b, float):
            if a is not None and b is not None and abs(a - b) <= 1e-6 * max(1.0, abs(b)):
                continue
        if a != b:
            out[name] = (a, b)
    return out


def _without_members(record: TeamRecord) -> TeamRecord:
    return replace(record, members=[])


def summary(plan: Plan, outcome: Outcome, *, dry_run: bool) -> str:
    """The closing line: what changed, or that nothing did."""
    tail = ""
    if any(outcome.differing.values()):
        tail += f"; {count(outcome.differing)} differ from LiteLLM and were left as they are (--update takes LiteLLM's values)"
    if plan.unmapped:
        tail += f"; {len(plan.unmapped)} thing(s) not mapped (listed above)"
    unchanged = f"{count(outcome.unchanged)} already in keystile and unchanged" if any(outcome.unchanged.values()) else ""
    if not outcome.changed:
        return ("dry run, nothing written: " if dry_run else "") + f"nothing to import: {unchanged or 'LiteLLM has no records'}{tail}"
    done = [f"{'would create' if dry_run else 'created'} {count(outcome.created)}" if any(outcome.created.values()) else "",
            f"{'would update' if dry_run else 'updated'} {count(outcome.updated)}" if any(outcome.updated.values()) else "",
            unchanged]
    return ("dry run, nothing written: " if dry_run else "") + "; ".join(part for part in done if part) + tail


def count(tally: dict[str, int]) -> str:
    """``{"team": 1, "key": 7}`` → ``1 team, 7 keys``."""
    return ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in tally.items() if n) or "nothing"
