"""The PostgreSQL driver: the repository's ``?`` SQL on an asyncpg connection pool.

Chosen by ``database_url: postgresql://…`` when several keystile instances share one
database. Placeholders become ``$1…$n`` (converted once per distinct statement), unique
violations become ``IntegrityViolation`` and anything that means "the server is not there
right now" becomes ``DatabaseUnavailable``, so callers handle both drivers alike.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Sequence

import asyncpg

from keystile.store.database import DatabaseUnavailable, IntegrityViolation, Many, Statement, split_statements

log = logging.getLogger("keystile.store")

POOL_MIN = 1
POOL_MAX = 10
CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0
MIGRATION_LOCK_ID = 0x6B657973  # pg_advisory_lock key shared by every keystile instance ("keys")

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, "cannot connect now" while starting
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    # Transient by nature: the same statements succeed when tried again.
    asyncpg.exceptions.TransactionRollbackError,  # deadlock, serialization failure
    asyncpg.exceptions.QueryCanceledError,  # statement timeout
    asyncpg.exceptions.LockNotAvailableError,
)


@functools.lru_cache(maxsize=4096)
def to_dollar_params(sql: str) -> str:
    """``?`` → ``$1``, ``$2``… outside quoted strings (the repository writes one SQL for both drivers)."""
    out: list[str] = []
    n = 0
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            continue
        out.append(ch)
    return "".join(out)


def _rowcount(status: str) -> int:
    """asyncpg's command tag (``UPDATE 3``, ``INSERT 0 1``) → rows changed."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def _translate(exc: BaseException) -> BaseException | None:
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityViolation(str(exc))
    if isinstance(exc, _UNAVAILABLE):
        return DatabaseUnavailable(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, asyncpg.InterfaceError) and not isinstance(exc, asyncpg.DataError):
        return DatabaseUnavailable(f"{type(exc).__name__}: {exc}")  # e.g. "connection is closed"
    return None


class PostgresDatabase:
    dialect = "postgresql"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, url: str) -> "PostgresDatabase":
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=POOL_MIN,
                max_size=POOL_MAX,
                timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
            )
        except BaseException as exc:
            translated = _translate(exc)
            if translated is None:
                raise
            raise translated from exc
        return cls(pool)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self.pool.acquire(timeout=CONNECT_TIMEOUT) as conn:
                yield conn
        except Exception as exc:
            translated = _translate(exc)
            if translated is None:
                raise
            raise translated from exc

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        async with self._connection() as conn:
            return [tuple(r) for r in await conn.fetch(to_dollar_params(sql), *params)]

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(to_dollar_params(sql), *params)
            return tuple(row) if row is not None else None

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._connection() as conn:
            return _rowcount(await conn.execute(to_dollar_params(sql), *params))

    async def transaction(self, statements: Sequence[Statement | Many]) -> list[list[tuple]]:
        async with self._connection() as conn:
            async with conn.transaction():
                results: list[list[tuple]] = []
                for statement in statements:
                    if isinstance(statement, Many):
                        await conn.executemany(to_dollar_params(statement.sql), statement.rows)
                        results.append([])
                    else:
                        sql, params = statement
                        results.append([tuple(r) for r in await conn.fetch(to_dollar_params(sql), *params)])
                return results

    async def run_script(self, script: str) -> None:
        async with self._connection() as conn:
            async with conn.transaction():
                for statement in split_statements(script):
                    await conn.execute(statement)

    @asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[None]:
        """Session advisory lock: one instance migrates, the others wait, then find nothing to do."""
        async with self._connection() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.pool.close(), timeout=5.0)
        except (asyncio.TimeoutError, *_UNAVAILABLE):
            self.pool.terminate()
