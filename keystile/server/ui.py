"""The admin UI at ``/ui``: a static single-page app shipped in the package, and its sign-in.

``GET /ui`` serves ``keystile/ui/static/index.html``; ``/ui/static/<file>`` its script and
styles (no CDN, nothing fetched from elsewhere: it works offline). The page talks to the
admin JSON API with the session cookie (``keystile.server.sessions``); ``/ui/login``,
``/ui/session`` and ``/ui/logout`` manage that session. Every page is sent with a strict
Content-Security-Policy (scripts and styles from this origin only, no framing).
``GET /keystile/config`` — the running configuration with secrets masked — is here too: only
the UI's Config page needs it.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import TYPE_CHECKING

import orjson

from keystile.config.view import settings_view
from keystile.errors import ErrorKind, GatewayError
from keystile.server.http import Receive, Scope, Send, header_value, read_body, send_bytes, send_error
from keystile.store.database import DatabaseUnavailable
from keystile.server.sessions import ABSOLUTE_TIMEOUT, IDLE_TIMEOUT, check_csrf, session_cookie

if TYPE_CHECKING:
    from keystile.server.admin import Admin, Body, Handler

from keystile.apiformat import ApiFormat

FMT = ApiFormat.OPENAI
_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
}
CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    b"font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_LOGIN_BODY_LIMIT = 4096


def load_static() -> dict[str, tuple[bytes, bytes, bytes]]:
    """name → (content type, body, ETag) for every file under ``keystile/ui/static``."""
    folder = resources.files("keystile").joinpath("ui/static")
    out = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _TYPES:
            data = entry.read_bytes()
            out[entry.name] = (_TYPES[suffix], data, b'"' + hashlib.sha256(data).hexdigest()[:16].encode() + b'"')
    return out


class AdminUI:
    def __init__(self, admin: "Admin") -> None:
        self.admin = admin
        self.gw = admin.gw
        self.files = load_static()

    def _file_handler(self, name: str, *, page: bool = False) -> "Handler":
        kind, data, etag = self.files[name]

        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["method"] not in ("GET", "HEAD"):
                await send_error(send, FMT, GatewayError(ErrorKind.METHOD_NOT_ALLOWED, f"{scope['path']} accepts GET."))
                return
            headers = [(b"content-type", kind), (b"etag", etag), *SECURITY_HEADERS]
            headers.append((b"cache-control", b"no-store" if page else b"no-cache"))
            if not page and header_value(scope["headers"], b"if-none-match") == etag:
                await send_bytes(send, 304, b"", headers)
                return
            await send_bytes(send, 200, b"" if scope["method"] == "HEAD" else data, headers)

        return handle

    # --- the session ----------------------------------------------------------------------------

    async def login(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``{"key": "<master key>"}`` → a session cookie and the page's CSRF token."""
        try:
            if scope["method"] != "POST":
                raise GatewayError(ErrorKind.METHOD_NOT_ALLOWED, "/ui/login accepts POST.")
            _same_origin(scope)
            raw = await read_body(receive, _LOGIN_BODY_LIMIT)
            try:
                data = orjson.loads(raw) if raw.strip() else {}
            except orjson.JSONDecodeError:
                raise GatewayError(ErrorKind.INVALID_REQUEST, "The body must be JSON: {\"key\": \"<master key>\"}.", param="key") from None
            key = data.get("key") if isinstance(data, dict) else None
            if not isinstance(key, str) or not key:
                raise GatewayError(ErrorKind.INVALID_REQUEST, "key: required, the master key.", param="key")
            try:
                secret, csrf = await self.gw.ui_sessions.sign_in(key.strip(), scope)
            except DatabaseUnavailable:
                raise GatewayError(ErrorKind.UNAVAILABLE, "keystile cannot reach its database right now; retry shortly.") from None
        except GatewayError as error:
            await send_error(send, FMT, error, [(b"cache-control", b"no-store")])
            return
        body = orjson.dumps({"signed_in": True, "csrf_token": csrf, "idle_timeout": IDLE_TIMEOUT, "absolute_timeout": ABSOLUTE_TIMEOUT})
        cookie = session_cookie(scope, secret, int(ABSOLUTE_TIMEOUT))
        await send_bytes(send, 200, body, [(b"content-type", b"application/json"), cookie, (b"cache-control", b"no-store")])

    async def session(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The signed-in page's CSRF token (only a same-origin script can read this answer)."""
        if scope["method"] != "GET":
            await send_error(send, FMT, GatewayError(ErrorKind.METHOD_NOT_ALLOWED, "/ui/session accepts GET."))
            return
        try:
            session = await self.gw.ui_sessions.current(scope)
        except DatabaseUnavailable:
            await send_error(send, FMT, GatewayError(ErrorKind.UNAVAILABLE, "keystile cannot reach its database right now."))
            return
        if session is None:
            error = GatewayError(ErrorKind.AUTHENTICATION, "Not signed in (or the session ended); sign in with the master key.")
            await send_error(send, FMT, error, [(b"cache-control", b"no-store")])
            return
        body = orjson.dumps(
            {
                "signed_in": True,
                "csrf_token": session.csrf_token,
                "idle_timeout": IDLE_TIMEOUT,
                "expires_at": session.created_at + ABSOLUTE_TIMEOUT,
            }
        )
        await send_bytes(send, 200, body, [(b"content-type", b"application/json"), (b"cache-control", b"no-store")])

    async def logout(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Ends the session on every instance (it is deleted from the database) and clears the cookie."""
        try:
            if scope["method"] != "POST":
                raise GatewayError(ErrorKind.METHOD_NOT_ALLOWED, "/ui/logout accepts POST.")
            session = await self.gw.ui_sessions.current(scope)
            if session is not None:
                check_csrf(scope, session)
                await self.gw.ui_sessions.sign_out(scope)
        except GatewayError as error:
            await send_error(send, FMT, error)
            return
        cookie = session_cookie(scope, "", 0)
        await send_bytes(send, 200, b'{"signed_in":false}', [(b"content-type", b"application/json"), cookie, (b"cache-control", b"no-store")])

    # --- the configuration, masked ------------------------------------------------------------

    async def config(self, body: "Body", query: dict) -> dict:
        return settings_view(self.gw.settings, self.gw.router.runtime)


def _same_origin(scope: Scope) -> None:
    """A sign-in must come from the UI's own page (no login CSRF from another site)."""
    origin = header_value(scope["headers"], b"origin")
    if origin is None:
        return
    host = header_value(scope["headers"], b"host") or b""
    if origin not in (b"http://" + host, b"https://" + host):
        raise GatewayError(ErrorKind.PERMISSION, "Sign-in refused: it must come from the admin UI's own page.")


def routes(admin: "Admin") -> dict[str, "Handler"]:
    ui = AdminUI(admin)
    table: dict[str, "Handler"] = {
        "/ui": ui._file_handler("index.html", page=True),
        "/ui/login": ui.login,
        "/ui/session": ui.session,
        "/ui/logout": ui.logout,
        "/keystile/config": admin.handler("GET", ui.config),
    }
    for name in ui.files:
        if name != "index.html":
            table[f"/ui/static/{name}"] = ui._file_handler(name)
    return table
