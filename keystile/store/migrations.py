"""Versioned schema migrations: numbered SQL files applied in order, each in its own transaction.

Startup applies what is missing and refuses to run on a schema newer than this code, so an
old binary never writes to a database a newer one has changed.
"""

from __future__ import annotations

import re
import time
from importlib import resources

from keystile.store.database import Database

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class SchemaTooNew(Exception):
    pass


def available_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped with this keystile, in order."""
    out = []
    for entry in resources.files("keystile.store").joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            out.append((int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    return sorted(out)


def latest_version() -> int:
    return available_migrations()[-1][0]


async def current_version(db: Database) -> int:
    await db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
    )
    row = await db.fetchone("SELECT MAX(version) FROM schema_migrations")
    return int(row[0]) if row and row[0] is not None else 0


async def migrate(db: Database) -> list[int]:
    """Apply pending migrations; returns the versions applied. Raises ``SchemaTooNew``.

    Runs under the database's migration lock: of several instances starting at once, one
    applies the migrations and the others, once it is done, find the schema current.
    """
    async with db.migration_lock():
        return await _migrate(db)


async def _migrate(db: Database) -> list[int]:
    version = await current_version(db)
    latest = latest_version()
    if version > latest:
        raise SchemaTooNew(
            f"the database schema is at version {version}, newer than this keystile understands "
            f"(up to {latest}); upgrade keystile before pointing it at this database"
        )
    applied = []
    for number, name, sql in available_migrations():
        if number <= version:
            continue
        record = f"INSERT INTO schema_migrations (version, name, applied_at) VALUES ({number}, '{name}', {time.time()!r})"
        await db.run_script(sql + ";\n" + record)
        applied.append(number)
    return applied
