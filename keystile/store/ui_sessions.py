"""Admin UI sign-ins: one row per session, found by the SHA-256 of its cookie value.

The cookie's value is a random 256-bit secret the browser holds (HttpOnly); the database
keeps only its hash, so a copy of the database signs no one in. Each session has its own
CSRF token, which the UI sends back in a header with every change. Rows live in the shared
database so any instance behind a balancer knows the session, and signing out on one ends
it on all.
"""

from __future__ import annotations

from dataclasses import dataclass

from keystile.store.database import Database


@dataclass(slots=True)
class UISession:
    session_hash: str
    csrf_token: str
    created_at: float
    last_seen: float


class SessionTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, session: UISession, user_agent: str | None) -> None:
        await self.db.execute(
            "INSERT INTO ui_sessions (session_hash, csrf_token, created_at, last_seen, user_agent) VALUES (?, ?, ?, ?, ?)",
            (session.session_hash, session.csrf_token, session.created_at, session.last_seen, user_agent),
        )

    async def get(self, session_hash: str) -> UISession | None:
        row = await self.db.fetchone(
            "SELECT session_hash, csrf_token, created_at, last_seen FROM ui_sessions WHERE session_hash = ?", (session_hash,)
        )
        return UISession(*row) if row else None

    async def touch(self, session_hash: str, now: float) -> None:
        await self.db.execute("UPDATE ui_sessions SET last_seen = ? WHERE session_hash = ?", (now, session_hash))

    async def delete(self, session_hash: str) -> bool:
        return await self.db.execute("DELETE FROM ui_sessions WHERE session_hash = ?", (session_hash,)) > 0

    async def prune(self, idle_before: float, created_before: float) -> int:
        """Forget sessions that expired (idle too long, or too old)."""
        return await self.db.execute(
            "DELETE FROM ui_sessions WHERE last_seen < ? OR created_at < ?", (idle_before, created_before)
        )
