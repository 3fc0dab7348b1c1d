"""The small driver interface the repository speaks, and its SQLite implementation.

Queries are written once, with ``?`` placeholders, in SQL that SQLite and PostgreSQL both
accept; each driver adapts placeholders and runs them. SQLite runs on one dedicated thread
with the stdlib driver (7 µs lookups, see STACK.md) so the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, AsyncIterator, Callable, Iterable, NamedTuple, Protocol, Sequence

Statement = tuple[str, Sequence[Any]]


class Many(NamedTuple):
    """One statement run for many parameter rows (``executemany``) inside a transaction."""

    sql: str
    rows: Iterable[Sequence[Any]]
    """Iterated once, by the driver (SQLite: on its own thread)."""


class DatabaseUnavailable(Exception):
    """The database cannot be reached or refused the operation for a transient reason."""


class IntegrityViolation(Exception):
    """A write broke a uniqueness rule (a key alias or id already in use)."""


class Database(Protocol):
    dialect: str
    """``sqlite`` or ``postgresql``."""

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple | None: ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        ...

    async def transaction(self, statements: Sequence[Statement | Many]) -> list[list[tuple]]:
        """Run ``statements`` in one transaction; returns each statement's rows (for RETURNING; [] for ``Many``)."""
        ...

    async def run_script(self, script: str) -> None:
        """Run several ``;``-separated DDL statements in one transaction (migrations)."""
        ...

    def migration_lock(self) -> AbstractAsyncContextManager[None]:
        """Held while migrating, so instances starting together do not race (PostgreSQL: advisory lock)."""
        ...

    async def close(self) -> None: ...


class CountingDatabase:
    """A ``Database`` that reports each round trip (``read``: a query; ``write``: a statement or
    transaction) to ``on_call``, so ``/metrics`` and the benchmark can show how rarely the
    request path touches the store. Everything else passes straight through."""

    def __init__(self, db: Database, on_call: Callable[[str], None]) -> None:
        self.db = db
        self.dialect = db.dialect
        self._on_call = on_call

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        self._on_call("read")
        return await self.db.fetchall(sql, params)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        self._on_call("read")
        return await self.db.fetchone(sql, params)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._on_call("write")
        return await self.db.execute(sql, params)

    async def transaction(self, statements: Sequence[Statement | Many]) -> list[list[tuple]]:
        self._on_call("write")
        return await self.db.transaction(statements)

    async def run_script(self, script: str) -> None:
        await self.db.run_script(script)

    def migration_lock(self) -> AbstractAsyncContextManager[None]:
        return self.db.migration_lock()

    async def close(self) -> None:
        await self.db.close()


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or ``sqlite://:memory:`` → a filename."""
    rest = url[len("sqlite://"):]
    if rest.startswith("/"):
        rest = rest[1:]
    return rest or ":memory:"


BACKGROUND_NICENESS = 10
"""How much lower than the event loop the SQLite thread runs (Linux nice steps)."""


def lower_thread_priority() -> None:
    """Run the calling thread ``BACKGROUND_NICENESS`` steps below the rest of the process.

    The database thread mostly writes spend batches: once a second it binds and commits a
    second's rows. At equal priority that burst takes its fair share of the core from the
    event loop, and the requests arriving meanwhile wait (it was most of the p99 latency at
    one connection). At nice +10 the scheduler gives it about a tenth of a busy core, still
    far more than the writes need; an idle core it gets whole. Where the platform cannot do
    this, nothing changes.
    """
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(current + BACKGROUND_NICENESS, 19))
    except (AttributeError, OSError):
        pass


class SQLiteDatabase:
    """stdlib sqlite3 in WAL mode, all calls on one thread owned by this object."""

    dialect = "sqlite"

    def __init__(self, url: str) -> None:
        self.path = sqlite_path(url)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keystile-sqlite", initializer=lower_thread_priority)
        self._conn: sqlite3.Connection | None = None
        self._owner: int | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != ":memory:":
                directory = os.path.dirname(os.path.abspath(self.path))
                os.makedirs(directory, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._conn = conn
            self._owner = threading.get_ident()
        return self._conn

    async def _run(self, fn, *args):  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.IntegrityError as exc:
            raise IntegrityViolation(str(exc)) from exc
        except sqlite3.OperationalError as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    def _fetchall(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        return self._connect().execute(sql, params).fetchall()

    def _fetchone(self, sql: str, params: Sequence[Any]) -> tuple | None:
        return self._connect().execute(sql, params).fetchone()

    def _execute(self, sql: str, params: Sequence[Any]) -> int:
        return self._connect().execute(sql, params).rowcount

    def _transaction(self, statements: Sequence[Statement | Many]) -> list[list[tuple]]:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            results = [
                (conn.executemany(s.sql, s.rows) and []) if isinstance(s, Many) else conn.execute(*s).fetchall()
                for s in statements
            ]
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return results

    def _script(self, script: str) -> None:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in split_statements(script):
                conn.execute(statement)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return await self._run(self._fetchall, sql, params)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        return await self._run(self._fetchone, sql, params)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await self._run(self._execute, sql, params)

    async def transaction(self, statements: Sequence[Statement | Many]) -> list[list[tuple]]:
        return await self._run(self._transaction, statements)

    async def run_script(self, script: str) -> None:
        await self._run(self._script, script)

    @asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[None]:
        yield  # one file, one process migrating it: `serve` migrates before its workers start

    async def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._run(_close)
        self._executor.shutdown(wait=True)


def split_statements(script: str) -> list[str]:
    """Split a migration file on ``;`` line ends, dropping ``--`` comments (our SQL has no ``;`` in strings)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


async def open_database(url: str) -> Database:
    """The driver for ``url``: ``sqlite:///path`` or ``postgresql://…``."""
    if url.startswith("sqlite:"):
        return SQLiteDatabase(url)
    if url.startswith(("postgresql://", "postgres://")):
        from keystile.store.postgres import PostgresDatabase

        return await PostgresDatabase.connect(url)
    raise ValueError(f"unsupported database_url scheme: {url.split(':', 1)[0]!r} (use sqlite:/// or postgresql://)")
