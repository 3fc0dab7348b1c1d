"""Admin UI sessions: sign in with the master key, then a cookie instead of the key.

Security, in one place:

- **Who may sign in**: whoever presents the master key. keystile has no admin role for
  virtual keys (a key that may manage keystile would be a second master key, harder to see
  and to rotate), so the UI is exactly as powerful as the admin API with the master key.
  Failed sign-ins are throttled per client address (``MAX_FAILURES`` a minute, then 429).
- **The cookie** ``keystile_session`` holds a random 256-bit secret; the database keeps only
  its SHA-256. It is ``HttpOnly`` (page scripts cannot read it), ``SameSite=Strict`` (no other
  site's page can make the browser send it), ``Path=/`` and ``Secure`` when the UI is served
  over https (directly, or behind a proxy that says ``x-forwarded-proto: https``).
- **CSRF**: every request authenticated by the cookie that is not a ``GET`` must carry the
  session's own CSRF token in ``x-keystile-csrf`` (a synchronizer token, handed to the page by
  ``GET /ui/session``, compared in constant time) and, when the browser sends an ``Origin``,
  that origin must be the gateway's own. A request with a gateway key in a header is
  authenticated by that key alone and never looks at the cookie, so Bearer clients are as
  before.
- **Expiry**: a session ends after ``IDLE_TIMEOUT`` without use or ``ABSOLUTE_TIMEOUT`` after
  sign-in, whichever comes first; signing out deletes it on every instance at once.
- The raw master key is only compared (constant time, via its hash) and never stored, logged
  or sent back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from typing import TYPE_CHECKING

from keystile.auth import hash_key
from keystile.credentials import CREDENTIAL_HEADER_NAMES
from keystile.errors import ErrorKind, GatewayError
from keystile.server.http import Scope, header_value
from keystile.store.ui_sessions import UISession

if TYPE_CHECKING:
    from keystile.server.app import Gateway

COOKIE = "keystile_session"
CSRF_HEADER = b"x-keystile-csrf"
IDLE_TIMEOUT = 30 * 60.0
ABSOLUTE_TIMEOUT = 12 * 3600.0
TOUCH_EVERY = 30.0
"""``last_seen`` is written at most this often per session (one write, not one per request)."""
MAX_FAILURES = 10
"""Failed sign-ins per client address per minute before keystile answers 429."""
_SAFE_METHODS = frozenset({"GET", "HEAD"})


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def is_https(scope: Scope) -> bool:
    if scope.get("scheme") == "https":
        return True
    forwarded = header_value(scope["headers"], b"x-forwarded-proto")
    return forwarded is not None and forwarded.split(b",")[0].strip().lower() == b"https"


def session_cookie(scope: Scope, value: str, max_age: int) -> tuple[bytes, bytes]:
    """The ``set-cookie`` header for ``value`` (empty with max_age 0: delete it)."""
    parts = [f"{COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Strict", f"Max-Age={max_age}"]
    if is_https(scope):
        parts.append("Secure")
    return b"set-cookie", "; ".join(parts).encode()


def cookie_value(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            key, sep, val = part.strip().partition("=")
            if sep and key == COOKIE and val:
                return val
    return None


def has_credential_header(scope: Scope) -> bool:
    return any(name in CREDENTIAL_HEADER_NAMES for name, _ in scope["headers"])


class SessionManager:
    def __init__(self, gateway: "Gateway") -> None:
        self.gw = gateway
        self._failures: dict[str, deque[float]] = {}

    def _now(self) -> float:
        return self.gw.clock.now()

    # --- signing in and out ---------------------------------------------------------------------

    async def sign_in(self, key: str, scope: Scope) -> tuple[str, str]:
        """(cookie value, CSRF token) for a new session, if ``key`` is the master key."""
        client = (scope.get("client") or ("?", 0))[0]
        self._throttle(client)
        if not self.gw.authenticator.is_master(hash_key(key)):
            self._failed(client)
            raise GatewayError(ErrorKind.AUTHENTICATION, "That is not the master key. The admin UI signs in with the master key only.")
        secret = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self._now()
        agent = header_value(scope["headers"], b"user-agent")
        await self.gw.sessions.create(  # type: ignore[union-attr]
            UISession(_hash(secret), csrf, now, now), agent.decode("latin-1")[:200] if agent else None
        )
        await self.gw.sessions.prune(now - IDLE_TIMEOUT, now - ABSOLUTE_TIMEOUT)  # type: ignore[union-attr]
        return secret, csrf

    async def sign_out(self, scope: Scope) -> bool:
        value = cookie_value(scope)
        if value is None:
            return False
        return await self.gw.sessions.delete(_hash(value))  # type: ignore[union-attr]

    def _throttle(self, client: str) -> None:
        window = self._failures.get(client)
        if window is None:
            return
        cutoff = time.monotonic() - 60.0
        while window and window[0] < cutoff:
            window.popleft()
        if len(window) >= MAX_FAILURES:
            raise GatewayError(ErrorKind.RATE_LIMITED, "Too many failed sign-ins from this address; wait a minute.", headers=(("retry-after", "60"),))

    def _failed(self, client: str) -> None:
        if len(self._failures) > 10_000:
            self._failures.clear()
        self._failures.setdefault(client, deque()).append(time.monotonic())

    # --- using a session ---------------------------------------------------------------------

    async def current(self, scope: Scope) -> UISession | None:
        """The live session the request's cookie names, or None (no cookie, unknown, expired)."""
        value = cookie_value(scope)
        if value is None:
            return None
        table = self.gw.sessions
        assert table is not None
        session = await table.get(_hash(value))
        if session is None:
            return None
        now = self._now()
        if now - session.last_seen > IDLE_TIMEOUT or now - session.created_at > ABSOLUTE_TIMEOUT:
            await table.delete(session.session_hash)
            return None
        if now - session.last_seen > TOUCH_EVERY:
            await table.touch(session.session_hash, now)
            session.last_seen = now
        return session

    async def admits(self, scope: Scope) -> bool:
        """Whether a request without a gateway key is an admin's, by its session (CSRF checked for changes).

        False when the request carries a key header (the key decides) or no session cookie at all;
        raises when the cookie is stale or the CSRF check fails.
        """
        if has_credential_header(scope) or cookie_value(scope) is None:
            return False
        session = await self.current(scope)
        if session is None:
            raise GatewayError(ErrorKind.AUTHENTICATION, "Your admin UI session has ended; sign in again at /ui.")
        if scope["method"] not in _SAFE_METHODS:
            check_csrf(scope, session)
        return True


def check_csrf(scope: Scope, session: UISession) -> None:
    """The session's token in ``x-keystile-csrf``, and — when the browser names one — our own origin."""
    token = header_value(scope["headers"], CSRF_HEADER)
    if token is None or not hmac.compare_digest(token, session.csrf_token.encode()):
        raise GatewayError(ErrorKind.PERMISSION, "Missing or wrong CSRF token (x-keystile-csrf): reload the admin UI.")
    origin = header_value(scope["headers"], b"origin")
    if origin is not None:
        host = header_value(scope["headers"], b"host") or b""
        allowed = {b"http://" + host, b"https://" + host}
        if origin not in allowed:
            raise GatewayError(ErrorKind.PERMISSION, "Cross-origin change refused: the admin UI only accepts changes from its own page.")
