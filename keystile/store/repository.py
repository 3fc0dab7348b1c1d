"""The store: keys, users, teams and spend, on whichever ``Database`` the URL chose.

Nothing here runs on the inference hot path: keys are read through ``auth``'s cache and
spend arrives in batches from ``accounting.spend``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, fields
from typing import Any, Iterable, Sequence, TypeVar

import orjson

from keystile.store.columns import (
    CONTENT_CHARS,
    NAME_CHARS,
    REQUEST_ID_CHARS,
    fit_count,
    fit_float,
    fit_money,
    fit_text,
    storable,
)
from keystile.store.database import Database, Many, Statement, open_database
from keystile.store.migrations import migrate
from keystile.store.records import KeyRecord, SpendLogRow, TeamMember, TeamRecord, UserRecord, column_names

R = TypeVar("R", KeyRecord, UserRecord, TeamRecord)

_JSON_COLUMNS = frozenset({"models", "model_rpm_limit", "model_tpm_limit", "metadata", "request_tags"})
_BOOL_COLUMNS = frozenset({"blocked", "stream"})


@dataclass(frozen=True)
class _Table:
    name: str
    key: str
    """The column a record is looked up by."""
    record: type
    columns: tuple[str, ...]
    spend_key: str
    """The column spend is charged by: a key's stable ``key_id``, not the hash of its current secret."""


KEYS = _Table("keys", "token_hash", KeyRecord, column_names(KeyRecord), "key_id")
USERS = _Table("users", "user_id", UserRecord, column_names(UserRecord), "user_id")
TEAMS = _Table(
    "teams", "team_id", TeamRecord,
    tuple(c for c in column_names(TeamRecord) if c not in ("members", "members_with_roles")), "team_id",
)
ENTITY_TABLES = {"key": KEYS, "user": USERS, "team": TEAMS}
SPEND_COLUMNS = column_names(SpendLogRow)


def _to_db(column: str, value: Any) -> Any:
    if column in _JSON_COLUMNS:
        return orjson.dumps(value if value is not None else ({} if "limit" in column or column == "metadata" else [])).decode()
    if column in _BOOL_COLUMNS:
        return 1 if value else 0
    return value


def _from_db(column: str, value: Any) -> Any:
    if column == "request_tags":
        return orjson.loads(value) if value else None
    if column in _JSON_COLUMNS:
        return orjson.loads(value) if value else ({} if "limit" in column or column == "metadata" else [])
    if column in _BOOL_COLUMNS:
        return bool(value)
    return value


def _spend_row(row: SpendLogRow) -> tuple:
    """A spend-log row's parameters, in ``SPEND_COLUMNS`` order, made to fit the columns.

    Text loses NULs and lone surrogates and is cut to its cap (a model name a client made up
    can be megabytes long); counts are clamped to BIGINT and money to ``MONEY_MAX``, so no value
    a client or an upstream chose can make the database refuse the row.
    """
    return (
        fit_text(row.request_id, REQUEST_ID_CHARS), fit_float(row.ts), fit_text(row.key_id, NAME_CHARS),
        fit_text(row.key_alias, NAME_CHARS), fit_text(row.user_id, NAME_CHARS), fit_text(row.team_id, NAME_CHARS),
        fit_text(row.model, NAME_CHARS), fit_text(row.model_group, NAME_CHARS), fit_text(row.deployment, NAME_CHARS),
        fit_text(row.provider, NAME_CHARS), fit_count(row.input_tokens), fit_count(row.output_tokens),
        fit_count(row.cache_read_tokens), fit_count(row.cache_write_tokens), fit_money(row.cost), fit_count(row.status),
        fit_float(row.latency_ms), 1 if row.stream else 0, fit_count(row.attempts),
        fit_text(row.request_content, CONTENT_CHARS), fit_text(row.response_content, CONTENT_CHARS),
        fit_count(row.requests), fit_text(row.call_type, NAME_CHARS),
        orjson.dumps([fit_text(t, NAME_CHARS) for t in row.request_tags]).decode() if row.request_tags else None,
    )


def _record(table: _Table, row: Sequence[Any]) -> Any:
    return table.record(**{c: _from_db(c, v) for c, v in zip(table.columns, row)})


@dataclass(slots=True)
class SpendBatch:
    """What one flush writes: spend increments per entity, budget-period resets, and log rows."""

    increments: dict[tuple[str, str], float]
    """(``key``/``user``/``team``, id) → USD to add."""
    resets: dict[tuple[str, str], tuple[float | None, float]]
    """(kind, id) → (reset_at the period being closed had, the next reset_at): spend restarts at 0."""
    rows: list[SpendLogRow]


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    async def open(cls, url: str, *, run_migrations: bool = True) -> "Store":
        db = await open_database(url)
        store = cls(db)
        if run_migrations:
            await migrate(db)
        return store

    async def close(self) -> None:
        await self.db.close()

    async def ping(self) -> None:
        await self.db.fetchone("SELECT 1")

    # --- meta -----------------------------------------------------------------------------

    async def get_meta(self, name: str) -> str | None:
        row = await self.db.fetchone("SELECT value FROM meta WHERE name = ?", (name,))
        return row[0] if row else None

    async def set_meta(self, name: str, value: str) -> None:
        await self.db.execute(
            "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    async def insert_meta_if_absent(self, name: str, value: str) -> bool:
        """True when this call set it (several processes may race to create the master key)."""
        changed = await self.db.execute(
            "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (name, value)
        )
        return changed == 1

    def _bump_statement(self) -> Statement:
        """Every change to keys/users/teams bumps this counter; other processes poll it to drop caches."""
        return (
            "INSERT INTO meta (name, value) VALUES ('auth_revision', '1') "
            "ON CONFLICT (name) DO UPDATE SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT)",
            (),
        )

    async def auth_revision(self) -> int:
        value = await self.get_meta("auth_revision")
        return int(value) if value else 0

    # --- generic entity operations ---------------------------------------------------------

    async def _get(self, table: _Table, key: str) -> Any:
        row = await self.db.fetchone(
            f"SELECT {', '.join(table.columns)} FROM {table.name} WHERE {table.key} = ?", (key,)
        )
        return _record(table, row) if row else None

    async def _insert(self, table: _Table, record: Any) -> None:
        now = time.time()
        record.created_at = record.created_at or now
        record.updated_at = now
        values = [_to_db(c, getattr(record, c)) for c in table.columns]
        placeholders = ", ".join("?" for _ in table.columns)
        await self.db.transaction(
            [
                (f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({placeholders})", values),
                self._bump_statement(),
            ]
        )

    async def _update(self, table: _Table, key: str, changes: dict[str, Any]) -> Any:
        changes = {c: v for c, v in changes.items() if c in table.columns and c not in (table.key, table.spend_key)}
        if changes:
            changes["updated_at"] = time.time()
            assignments = ", ".join(f"{c} = ?" for c in changes)
            values = [_to_db(c, v) for c, v in changes.items()]
            await self.db.transaction(
                [
                    (f"UPDATE {table.name} SET {assignments} WHERE {table.key} = ?", [*values, key]),
                    self._bump_statement(),
                ]
            )
        return await self._get(table, key)

    async def _list(
        self, table: _Table, where: dict[str, Any], limit: int, offset: int, search: tuple[str, list[Any]] | None = None
    ) -> list[Any]:
        clauses = [f"{c} = ?" for c in where]
        params = list(where.values())
        if search is not None:
            clauses.append(search[0])
            params.extend(search[1])
        sql = f"SELECT {', '.join(table.columns)} FROM {table.name}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created_at, " + table.key + " LIMIT ? OFFSET ?"
        rows = await self.db.fetchall(sql, [*params, limit, offset])
        return [_record(table, row) for row in rows]

    # --- keys ------------------------------------------------------------------------------

    async def get_key(self, token_hash: str) -> KeyRecord | None:
        return await self._get(KEYS, token_hash)

    async def insert_key(self, record: KeyRecord) -> None:
        """Insert a key; gives it its stable ``key_id`` (its hash, unless a regenerated key already has that id)."""
        if not record.key_id:
            taken = await self.db.fetchone("SELECT 1 FROM keys WHERE key_id = ?", (record.token_hash,))
            record.key_id = secrets.token_hex(32) if taken else record.token_hash
        await self._insert(KEYS, record)

    async def get_key_by_id(self, key_id: str) -> KeyRecord | None:
        row = await self.db.fetchone(f"SELECT {', '.join(KEYS.columns)} FROM keys WHERE key_id = ?", (key_id,))
        return _record(KEYS, row) if row else None

    async def update_key(self, token_hash: str, changes: dict[str, Any]) -> KeyRecord | None:
        return await self._update(KEYS, token_hash, changes)

    async def find_key_by_alias(self, alias: str) -> KeyRecord | None:
        row = await self.db.fetchone(f"SELECT {', '.join(KEYS.columns)} FROM keys WHERE key_alias = ?", (alias,))
        return _record(KEYS, row) if row else None

    async def list_keys(
        self,
        *,
        user_id: str | None = None,
        team_id: str | None = None,
        search: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[KeyRecord]:
        """``search``: a case-insensitive part of the key's alias, masked name, user or team."""
        where = {k: v for k, v in (("user_id", user_id), ("team_id", team_id)) if v is not None}
        return await self._list(KEYS, where, limit, offset, _key_search(search))

    async def count_keys(self, *, user_id: str | None = None, team_id: str | None = None, search: str | None = None) -> int:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("user_id", user_id), ("team_id", team_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        found = _key_search(search)
        if found is not None:
            clauses.append(found[0])
            params.extend(found[1])
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        row = await self.db.fetchone(f"SELECT COUNT(*) FROM keys{where}", params)
        return int(row[0]) if row else 0

    async def delete_keys(self, token_hashes: Iterable[str]) -> list[str]:
        hashes = list(dict.fromkeys(token_hashes))
        if not hashes:
            return []
        marks = ", ".join("?" for _ in hashes)
        results = await self.db.transaction(
            [
                (f"DELETE FROM keys WHERE token_hash IN ({marks}) RETURNING token_hash", hashes),
                self._bump_statement(),
            ]
        )
        return [row[0] for row in results[0]]

    async def rekey(self, old_hash: str, new_hash: str, new_name: str, changes: dict[str, Any]) -> KeyRecord | None:
        """Give a key a new secret (regenerate): same record and ``key_id``, new hash; the old secret stops working.

        Spend and log rows are kept under the ``key_id``, so nothing else moves, and requests
        still in flight under the old secret are charged to the same key when they end.
        """
        changes = {c: v for c, v in changes.items() if c in KEYS.columns and c not in ("token_hash", "key_name", "key_id")}
        changes.update(token_hash=new_hash, key_name=new_name, updated_at=time.time())
        assignments = ", ".join(f"{c} = ?" for c in changes)
        values = [_to_db(c, v) for c, v in changes.items()]
        results = await self.db.transaction(
            [
                (f"UPDATE keys SET {assignments} WHERE token_hash = ? RETURNING token_hash", [*values, old_hash]),
                self._bump_statement(),
            ]
        )
        return await self.get_key(new_hash) if results[0] else None

    # --- users and teams ---------------------------------------------------------------------

    async def get_user(self, user_id: str) -> UserRecord | None:
        return await self._get(USERS, user_id)

    async def insert_user(self, record: UserRecord) -> None:
        await self._insert(USERS, record)

    async def update_user(self, user_id: str, changes: dict[str, Any]) -> UserRecord | None:
        return await self._update(USERS, user_id, changes)

    async def list_users(self, *, limit: int = 100, offset: int = 0) -> list[UserRecord]:
        return await self._list(USERS, {}, limit, offset)

    async def find_users_by_email(self, email: str, limit: int = 2) -> list[UserRecord]:
        rows = await self.db.fetchall(
            f"SELECT {', '.join(USERS.columns)} FROM users WHERE user_email = ? ORDER BY created_at, user_id LIMIT ?",
            (email, limit),
        )
        return [_record(USERS, row) for row in rows]

    async def delete_users(self, user_ids: Iterable[str]) -> list[str]:
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        results = await self.db.transaction(
            [
                (f"DELETE FROM users WHERE user_id IN ({marks}) RETURNING user_id", ids),
                (f"DELETE FROM team_members WHERE user_id IN ({marks})", ids),
                (f"DELETE FROM keys WHERE user_id IN ({marks})", ids),
                self._bump_statement(),
            ]
        )
        return [row[0] for row in results[0]]

    async def get_team(self, team_id: str) -> TeamRecord | None:
        team = await self._get(TEAMS, team_id)
        if team is not None:
            await self._load_members(team)
        return team

    async def _load_members(self, team: TeamRecord) -> None:
        rows = await self.db.fetchall(
            "SELECT m.user_id, m.role, u.user_email FROM team_members m LEFT JOIN users u ON u.user_id = m.user_id "
            "WHERE m.team_id = ? ORDER BY m.user_id",
            (team.team_id,),
        )
        team.members = [row[0] for row in rows]
        team.members_with_roles = [TeamMember(row[0], row[1], row[2]) for row in rows]

    async def insert_team(self, record: TeamRecord) -> None:
        await self._insert(TEAMS, record)
        roles = {m.user_id: m.role for m in record.members_with_roles}
        for user_id in dict.fromkeys([*record.members, *roles]):
            await self.add_team_member(record.team_id, user_id, roles.get(user_id, "user"))

    async def update_team(self, team_id: str, changes: dict[str, Any]) -> TeamRecord | None:
        await self._update(TEAMS, team_id, changes)
        return await self.get_team(team_id)

    async def list_teams(self, *, limit: int = 100, offset: int = 0) -> list[TeamRecord]:
        teams = await self._list(TEAMS, {}, limit, offset)
        for team in teams:
            await self._load_members(team)
        return teams

    async def delete_teams(self, team_ids: Iterable[str]) -> list[str]:
        ids = list(dict.fromkeys(team_ids))
        if not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        results = await self.db.transaction(
            [
                (f"DELETE FROM teams WHERE team_id IN ({marks}) RETURNING team_id", ids),
                (f"DELETE FROM team_members WHERE team_id IN ({marks})", ids),
                (f"DELETE FROM keys WHERE team_id IN ({marks})", ids),
                self._bump_statement(),
            ]
        )
        return [row[0] for row in results[0]]

    async def add_team_member(self, team_id: str, user_id: str, role: str = "user") -> None:
        await self.db.transaction(
            [
                (
                    "INSERT INTO team_members (team_id, user_id, role) VALUES (?, ?, ?) "
                    "ON CONFLICT (team_id, user_id) DO UPDATE SET role = excluded.role",
                    (team_id, user_id, role),
                ),
                self._bump_statement(),
            ]
        )

    async def remove_team_member(self, team_id: str, user_id: str) -> bool:
        results = await self.db.transaction(
            [
                ("DELETE FROM team_members WHERE team_id = ? AND user_id = ? RETURNING user_id", (team_id, user_id)),
                self._bump_statement(),
            ]
        )
        return bool(results[0])

    # --- spend -----------------------------------------------------------------------------

    async def apply_spend(self, batch: SpendBatch) -> dict[tuple[str, str], tuple[float, float | None]]:
        """Write one batch in one transaction; returns each touched entity's (spend, budget_reset_at) after it.

        The totals include what every other process has written, which is how each process
        learns the shared spend without a read on the request path.
        """
        statements: list[Statement | Many] = []
        order: list[tuple[str, str]] = []
        touched = dict.fromkeys([*batch.resets, *batch.increments])
        for entity in touched:
            kind, ident = entity
            table = ENTITY_TABLES[kind]
            amount = batch.increments.get(entity, 0.0)
            reset = batch.resets.get(entity)
            if reset is not None:
                closing, next_reset = reset
                # Only the first process to close a period resets it; the guard makes it idempotent.
                statements.append(
                    (
                        f"UPDATE {table.name} SET spend = 0, budget_reset_at = ? "
                        f"WHERE {table.spend_key} = ? AND (budget_reset_at IS NULL OR budget_reset_at = ?)",
                        (next_reset, ident, closing),
                    )
                )
            statements.append(
                (
                    f"UPDATE {table.name} SET spend = spend + ? WHERE {table.spend_key} = ? RETURNING spend, budget_reset_at",
                    (fit_money(amount), ident),
                )
            )
            order.append(entity)
        if batch.rows:
            marks = ", ".join("?" for _ in SPEND_COLUMNS)
            sql = f"INSERT INTO spend_logs ({', '.join(SPEND_COLUMNS)}) VALUES ({marks}) ON CONFLICT (request_id) DO NOTHING"
            # Lazily: SQLite binds the rows on its own thread, so fitting them costs the event loop nothing.
            statements.append(Many(sql, map(_spend_row, batch.rows)))
            tagged = [
                (fit_text(row.request_id, REQUEST_ID_CHARS), fit_text(tag, NAME_CHARS), fit_float(row.ts), fit_money(row.cost))
                for row in batch.rows if row.request_tags for tag in row.request_tags
            ]
            if tagged:
                statements.append(
                    Many("INSERT INTO spend_tags (request_id, tag, ts, cost) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", tagged)
                )
        if not statements:
            return {}
        results = await self.db.transaction(statements)
        totals: dict[tuple[str, str], tuple[float, float | None]] = {}
        returning = [r for s, r in zip(statements, results) if not isinstance(s, Many) and "RETURNING spend" in s[0]]
        for entity, rows in zip(order, returning):
            if rows:
                totals[entity] = (float(rows[0][0]), rows[0][1])
        return totals

    async def spend_logs(
        self,
        *,
        key_id: str | None = None,
        user_id: str | None = None,
        team_id: str | None = None,
        model: str | None = None,
        start: float | None = None,
        end: float | None = None,
        request_id: str | None = None,
        limit: int = 1000,
    ) -> list[SpendLogRow]:
        """Rows newest first. A filter no stored text can equal (it holds a NUL) matches nothing."""
        if not all(storable(v) for v in (key_id, user_id, team_id, model, request_id) if v is not None):
            return []
        clauses, params = _spend_filters(key_id, user_id, team_id, model, start, end)
        if request_id is not None:
            clauses.append("request_id = ?")
            params.append(request_id)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self.db.fetchall(
            f"SELECT {', '.join(SPEND_COLUMNS)} FROM spend_logs{where} ORDER BY ts DESC LIMIT ?", [*params, limit]
        )
        return [SpendLogRow(**{c: _from_db(c, v) for c, v in zip(SPEND_COLUMNS, row)}) for row in rows]

    async def spend_report(self, by: str, *, start: float | None = None, end: float | None = None) -> list[tuple]:
        """Rows of (group, requests, input_tokens, output_tokens, cost), most expensive first.

        Refused requests (logged with 0 attempts) are left out: they cost nothing and would
        blur the requests column, which counts what was sent upstream.
        """
        column = {"key": "key_id", "user": "user_id", "team": "team_id", "model": "model"}[by]
        clauses, params = _spend_filters(None, None, None, None, start, end)
        clauses.append("attempts > 0")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        extra = ", MAX(key_alias)" if by == "key" else ""
        rows = await self.db.fetchall(
            # CAST: PostgreSQL sums BIGINT into NUMERIC (a Decimal in Python); SQLite is unaffected.
            f"SELECT {column}, COUNT(*), CAST(SUM(input_tokens + cache_read_tokens + cache_write_tokens) AS BIGINT), "
            f"CAST(SUM(output_tokens) AS BIGINT), SUM(cost){extra} FROM spend_logs{where} GROUP BY {column} ORDER BY SUM(cost) DESC",
            params,
        )
        return [tuple(row) for row in rows]

    async def prune_spend_logs(self, before: float) -> int:
        await self.db.execute("DELETE FROM spend_tags WHERE ts < ?", (before,))
        return await self.db.execute("DELETE FROM spend_logs WHERE ts < ?", (before,))


def _spend_filters(
    key_id: str | None,
    user_id: str | None,
    team_id: str | None,
    model: str | None,
    start: float | None,
    end: float | None,
) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("key_id", key_id), ("user_id", user_id), ("team_id", team_id), ("model", model)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if start is not None:
        clauses.append("ts >= ?")
        params.append(start)
    if end is not None:
        clauses.append("ts < ?")
        params.append(end)
    return clauses, params


def _key_search(search: str | None) -> tuple[str, list[Any]] | None:
    if not search:
        return None
    pattern = "%" + search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    columns = ("key_alias", "key_name", "user_id", "team_id")
    return "(" + " OR ".join(f"LOWER({c}) LIKE ? ESCAPE '\\'" for c in columns) + ")", [pattern] * len(columns)


def record_fields(record_type: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(record_type))


def spend_log_row(values: Sequence[Any]) -> SpendLogRow:
    """A spend-log row from a ``SELECT`` of ``SPEND_COLUMNS``, in that order."""
    return SpendLogRow(**{c: _from_db(c, v) for c, v in zip(SPEND_COLUMNS, values)})
