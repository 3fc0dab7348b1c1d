"""Aggregates over the spend log for reports and the admin UI: by day, by bucket, by group, by tag.

Each query is one ``GROUP BY`` in SQL both databases run; only the expression that cuts time
into buckets differs (SQLite truncates a positive ``CAST(… AS INTEGER)``, PostgreSQL rounds, so
it gets ``FLOOR``). Rows come back as plain tuples; the admin API shapes them (LiteLLM's shapes).
Nothing here runs on the request path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keystile.store.database import Database
from keystile.store.records import SpendLogRow
from keystile.store.repository import SPEND_COLUMNS, spend_log_row

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class SpendFilter:
    """Which spend-log rows a report covers: a time range [start, end) and optional equalities."""

    start: float | None = None
    end: float | None = None
    key_id: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    model: str | None = None
    key_alias: str | None = None

    def where(self, *extra: str) -> tuple[str, list[Any]]:
        clauses: list[str] = list(extra)
        params: list[Any] = []
        for column, value in (
            ("key_id", self.key_id), ("user_id", self.user_id), ("team_id", self.team_id), ("model", self.model),
            ("key_alias", self.key_alias),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.start is not None:
            clauses.append("ts >= ?")
            params.append(self.start)
        if self.end is not None:
            clauses.append("ts < ?")
            params.append(self.end)
        return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


class SpendReports:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _bucket(self, seconds: float) -> str:
        """SQL for the start (Unix seconds) of the ``seconds``-wide bucket a row's ``ts`` falls in."""
        width = repr(float(seconds))  # a number we chose, never client input
        if self.db.dialect == "sqlite":
            return f"(CAST(ts / {width} AS INTEGER) * {width})"
        return f"(FLOOR(ts / {width}) * {width})"

    async def total(self, where: SpendFilter) -> tuple[float, int]:
        """(spend, requests sent upstream) of the rows ``where`` selects."""
        sql, params = where.where()
        row = await self.db.fetchone(
            f"SELECT SUM(cost), SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) FROM spend_logs{sql}", params
        )
        return (float(row[0] or 0.0), int(row[1] or 0)) if row else (0.0, 0)

    async def by_day(self, where: SpendFilter, *, per_key: bool = False) -> list[tuple]:
        """(day start, spend[, key_id]) per UTC day, oldest first."""
        sql, params = where.where()
        day = self._bucket(DAY)
        key = ", key_id" if per_key else ""
        rows = await self.db.fetchall(
            f"SELECT {day} AS day, SUM(cost){key} FROM spend_logs{sql} GROUP BY {day}{key} ORDER BY day", params
        )
        return [tuple(r) for r in rows]

    async def by_day_and(self, column: str, where: SpendFilter) -> list[tuple]:
        """(day start, ``column`` value, model, key_id, spend, total tokens) — LiteLLM's team/customer report."""
        assert column in ("team_id", "user_id")
        sql, params = where.where()
        day = self._bucket(DAY)
        rows = await self.db.fetchall(
            f"SELECT {day} AS day, {column}, model, key_id, SUM(cost), "
            f"CAST(SUM(input_tokens + cache_read_tokens + cache_write_tokens + output_tokens) AS BIGINT) "
            f"FROM spend_logs{sql} GROUP BY {day}, {column}, model, key_id ORDER BY day",
            params,
        )
        return [tuple(r) for r in rows]

    async def by_pair(self, column: str, detail: str, where: SpendFilter) -> list[tuple]:
        """(``column`` value, ``detail`` value, spend, input tokens, output tokens), for the api_key/user/model reports."""
        assert column in ("key_id", "user_id", "model", "team_id") and detail in ("model", "key_id")
        sql, params = where.where()
        rows = await self.db.fetchall(
            f"SELECT {column}, {detail}, SUM(cost), CAST(SUM(input_tokens + cache_read_tokens + cache_write_tokens) AS BIGINT), "
            f"CAST(SUM(output_tokens) AS BIGINT) FROM spend_logs{sql} GROUP BY {column}, {detail} ORDER BY SUM(cost) DESC",
            params,
        )
        return [tuple(r) for r in rows]

    async def tags(self, start: float | None, end: float | None, tags: list[str] | None = None) -> list[tuple]:
        """(tag, requests, spend) per tag, most expensive first."""
        clauses, params = [], []
        if start is not None:
            clauses.append("ts >= ?")
            params.append(start)
        if end is not None:
            clauses.append("ts < ?")
            params.append(end)
        if tags:
            clauses.append(f"tag IN ({', '.join('?' for _ in tags)})")
            params.extend(tags)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self.db.fetchall(
            f"SELECT tag, COUNT(*), SUM(cost) FROM spend_tags{where} GROUP BY tag ORDER BY SUM(cost) DESC, tag", params
        )
        return [tuple(r) for r in rows]

    async def daily_activity(self, where: SpendFilter) -> list[tuple]:
        """Per (UTC day, model group, provider, key): requests, successes, failures, tokens and spend.

        Columns: day, model, provider, key_id, key_alias, team_id, requests, successful,
        failed, prompt tokens (without cache), completion tokens, cache read, cache write, spend.
        """
        sql, params = where.where()
        day = self._bucket(DAY)
        group = "COALESCE(model_group, model)"
        rows = await self.db.fetchall(
            f"SELECT {day} AS day, {group}, provider, key_id, MAX(key_alias), MAX(team_id), SUM(requests), "
            "SUM(CASE WHEN status < 400 THEN requests ELSE 0 END), SUM(CASE WHEN status >= 400 THEN requests ELSE 0 END), "
            "CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), "
            "CAST(SUM(cache_read_tokens) AS BIGINT), CAST(SUM(cache_write_tokens) AS BIGINT), SUM(cost) "
            f"FROM spend_logs{sql} GROUP BY {day}, {group}, provider, key_id ORDER BY day",
            params,
        )
        return [tuple(r) for r in rows]

    async def series(self, where: SpendFilter, bucket: float) -> list[tuple]:
        """Per time bucket: start, requests, errors (status ≥ 400), spend, tokens, mean and max latency (ms) of answered requests."""
        sql, params = where.where()
        b = self._bucket(bucket)
        answered = "status < 400 AND attempts > 0"
        rows = await self.db.fetchall(
            f"SELECT {b} AS bucket, SUM(requests), SUM(CASE WHEN status >= 400 THEN requests ELSE 0 END), SUM(cost), "
            "CAST(SUM(input_tokens + cache_read_tokens + cache_write_tokens + output_tokens) AS BIGINT), "
            f"AVG(CASE WHEN {answered} THEN latency_ms END), MAX(CASE WHEN {answered} THEN latency_ms END) "
            f"FROM spend_logs{sql} GROUP BY {b} ORDER BY bucket",
            params,
        )
        return [tuple(r) for r in rows]

    async def top(self, column: str, where: SpendFilter, limit: int = 8) -> list[tuple]:
        """(value, requests, spend, tokens[, key alias]) of the ``limit`` biggest spenders by ``column``."""
        assert column in ("key_id", "user_id", "team_id", "model")
        sql, params = where.where(f"{column} IS NOT NULL")
        alias = ", MAX(key_alias)" if column == "key_id" else ""
        rows = await self.db.fetchall(
            f"SELECT {column}, SUM(requests), SUM(cost), "
            f"CAST(SUM(input_tokens + cache_read_tokens + cache_write_tokens + output_tokens) AS BIGINT){alias} "
            f"FROM spend_logs{sql} GROUP BY {column} ORDER BY SUM(cost) DESC, SUM(requests) DESC LIMIT ?",
            [*params, limit],
        )
        return [tuple(r) for r in rows]

    async def log_page(
        self, where: SpendFilter, *, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[SpendLogRow], int]:
        """One page of spend-log rows, newest first, and how many rows match in all (the UI's paging)."""
        sql, params = where.where(*([_STATUS[status]] if status else []))
        rows = await self.db.fetchall(
            f"SELECT {', '.join(SPEND_COLUMNS)} FROM spend_logs{sql} ORDER BY ts DESC, request_id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        total = await self.db.fetchone(f"SELECT COUNT(*) FROM spend_logs{sql}", params)
        return [spend_log_row(r) for r in rows], int(total[0]) if total else 0


_STATUS = {"success": "status < 400", "failure": "status >= 400"}

