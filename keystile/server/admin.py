"""The admin API, shaped like LiteLLM's so existing scripts keep working. Master key only.

Keys (``/key/*``), users (``/user/*``), teams (``/team/*``), spend (``/spend/logs``), and
the operational endpoints (``/health*``, ``/metrics``). Every change that affects who may
call takes effect on the next request: the local key cache is dropped at once and other
processes notice the store's revision counter (or the Redis broadcast) within a second.
Raw keys appear only in the response that creates or regenerates them.

Every field has a type and a range (``Body``; the bounds are the constants below and the
column caps of ``store.columns``); anything outside is a 400 naming the field, and a record is
only stored once the answer describing it has been built, so no input can store something the
API then fails to show.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import time
import uuid
from typing import TYPE_CHECKING, Any, Awaitable, Callable
from urllib.parse import parse_qs

import orjson

from keystile.apiformat import ApiFormat
from keystile.auth import Identity, custom_key_problem, generate_key, hash_key
from keystile.credentials import mask, resolve_credentials
from keystile.durations import parse_duration
from keystile.errors import ErrorKind, GatewayError
from keystile.limits.budgets import period_seconds
from keystile.server.http import Receive, Scope, Send, read_body, send_bytes, send_error, send_json
from keystile.store.columns import DURATION_CHARS, EMAIL_CHARS, MONEY_MAX, NAME_CHARS, storable
from keystile.store.database import DatabaseUnavailable, IntegrityViolation
from keystile.store.keys import build_key
from keystile.store.records import TEAM_ROLES, KeyRecord, SpendLogRow, TeamMember, TeamRecord, UserRecord

if TYPE_CHECKING:
    from keystile.server.app import Gateway

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
_HASH = re.compile(r"^[0-9a-f]{64}$")
_ADMIN_BODY_LIMIT = 1 << 20
FMT = ApiFormat.OPENAI  # LiteLLM's admin API answers errors in OpenAI's shape


# The ranges every admin field is checked against (text caps: ``store.columns``).
LIMIT_MAX = 10**15
"""rpm / tpm / parallel limits: fits BIGINT and is exact in JSON's doubles."""
DURATION_MIN = 0.001
DURATION_MAX = 100 * 365 * 86400.0
"""Key lifetimes and budget periods: 1 ms to 100 years."""
LIST_MAX = 1000
"""Entries in a list field (models, keys to delete, members) or an object of per-model limits."""
METADATA_BYTES = 64 * 1024
QUERY_VALUE_CHARS = 2048
PAGE_MAX = 1_000_000
TIME_MIN, TIME_MAX = -62135596800.0, 253402300799.0
"""``start_date`` / ``end_date``: years 1 to 9999, what an ISO date can say."""
QUOTE_CHARS = 200
"""Client input quoted in an error message is cut to this."""


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    except (OverflowError, OSError, ValueError):  # a value stored before fields had ranges
        return "9999-12-31T23:59:59Z" if ts > 0 else "0001-01-01T00:00:00Z"


def bad_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(ErrorKind.INVALID_REQUEST, message, param=param)


def _not_found(message: str) -> GatewayError:
    return GatewayError(ErrorKind.NOT_FOUND, message)


def _quote(value: object) -> str:
    """``value`` for an error message: repr'd, at most ``QUOTE_CHARS`` characters of it."""
    text = repr(value)
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1] + "…"


def checked_text(name: str, value: str, cap: int = NAME_CHARS) -> str:
    """``value`` if it can be stored as it is: no NUL (or lone surrogate), at most ``cap`` characters."""
    if len(value) > cap:
        raise bad_request(f"{name}: at most {cap} characters, got {len(value)}.", name)
    if not storable(value):
        raise bad_request(f"{name}: must not contain NUL characters.", name)
    return value


def checked_duration(name: str, value: object) -> tuple[str, float]:
    """(the duration as it will be stored, its seconds): 1 ms to 100 years, written so it reads back the same."""
    if isinstance(value, str) and len(value) > DURATION_CHARS:
        raise bad_request(f"{name}: expected a duration like 30s, 1h or 7d, got {len(value)} characters.", name)
    try:
        seconds = parse_duration(value)
    except (ValueError, OverflowError) as exc:
        raise bad_request(f"{name}: {str(exc)[:QUOTE_CHARS]}.", name) from None
    if not DURATION_MIN <= seconds <= DURATION_MAX:
        raise bad_request(f"{name}: must be between 1ms and 100 years ({DURATION_MAX:.0f}s).", name)
    if isinstance(value, str):
        return value, seconds
    # A number is seconds; stored in the text form budgets parse (1e16 used to become "1e+16").
    text = f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    return text, parse_duration(text)


class Body:
    """Typed, range-checked reads from an admin request's JSON object; anything else is a 400 naming the field."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def has(self, name: str) -> bool:
        return name in self.data

    def string(self, name: str, cap: int = NAME_CHARS) -> str | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise bad_request(f"{name}: expected a string.", name)
        return checked_text(name, value, cap)

    def integer(self, name: str, minimum: int = 0, maximum: int = LIMIT_MAX) -> int | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise bad_request(f"{name}: expected an integer from {minimum} to {maximum}.", name)
        return value

    def number(self, name: str, maximum: float = MONEY_MAX) -> float | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= maximum:
            raise bad_request(f"{name}: expected a number from 0 to {maximum:g}.", name)
        return float(value)

    def boolean(self, name: str) -> bool | None:
        value = self.data.get(name)
        if value is not None and not isinstance(value, bool):
            raise bad_request(f"{name}: expected true or false.", name)
        return value

    def strings(self, name: str, cap: int = NAME_CHARS) -> list[str] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad_request(f"{name}: expected a list of strings.", name)
        if len(value) > LIST_MAX:
            raise bad_request(f"{name}: at most {LIST_MAX} entries, got {len(value)}.", name)
        for item in value:
            checked_text(name, item, cap)
        return value

    def mapping(self, name: str) -> dict | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise bad_request(f"{name}: expected an object.", name)
        try:
            size = len(orjson.dumps(value))
        except orjson.JSONEncodeError:
            raise bad_request(f"{name}: nested too deeply to store.", name) from None
        if size > METADATA_BYTES:
            raise bad_request(f"{name}: at most {METADATA_BYTES} bytes of JSON, got {size}.", name)
        return value

    def int_mapping(self, name: str) -> dict[str, int] | None:
        value = self.mapping(name)
        if value is None:
            return None
        if len(value) > LIST_MAX:
            raise bad_request(f"{name}: at most {LIST_MAX} entries, got {len(value)}.", name)
        for model, limit in value.items():
            checked_text(name, model)
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= LIMIT_MAX:
                raise bad_request(f"{name}: expected an object of model name to an integer from 1 to {LIMIT_MAX}.", name)
        return value

    def duration(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is None:
            return None
        return checked_duration(name, value)[0]


# Fields shared by keys, users and teams: name → reader.
_LIMIT_READERS: dict[str, Callable[[Body, str], Any]] = {
    "models": Body.strings,
    "max_budget": Body.number,
    "soft_budget": Body.number,
    "budget_duration": Body.duration,
    "rpm_limit": lambda b, n: b.integer(n, 1),
    "tpm_limit": lambda b, n: b.integer(n, 1),
    "max_parallel_requests": lambda b, n: b.integer(n, 1),
    "metadata": Body.mapping,
}
_KEY_READERS: dict[str, Callable[[Body, str], Any]] = {
    **_LIMIT_READERS,
    "key_alias": Body.string,
    "user_id": Body.string,
    "team_id": Body.string,
    "model_rpm_limit": Body.int_mapping,
    "model_tpm_limit": Body.int_mapping,
    "blocked": Body.boolean,
    "spend": Body.number,
}
_USER_READERS = {
    **_LIMIT_READERS,
    "user_alias": Body.string,
    "user_email": lambda b, n: b.string(n, EMAIL_CHARS),
    "spend": Body.number,
}
_TEAM_READERS = {**_LIMIT_READERS, "team_alias": Body.string, "blocked": Body.boolean, "spend": Body.number}


_NOT_NULL = frozenset({"models", "metadata", "model_rpm_limit", "model_tpm_limit", "blocked", "spend"})
"""Fields a record always has: ``null`` for one of them means "not given" (LiteLLM's reading too)."""


def _read_fields(body: Body, readers: dict[str, Callable[[Body, str], Any]]) -> dict[str, Any]:
    fields = {name: reader(body, name) for name, reader in readers.items() if body.has(name)}
    return {name: value for name, value in fields.items() if value is not None or name not in _NOT_NULL}


def new_key_fields(data: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A new key's fields and lifetime (``duration``), checked as ``/key/generate`` checks them.

    ``keystile keys create`` uses it too, so a key made on the command line obeys the same
    rules (a limit of 0 or a budget period of ``30days`` is refused, not stored).
    """
    body = Body(data)
    return _read_fields(body, _KEY_READERS), body.duration("duration")


class Admin:
    def __init__(self, gateway: "Gateway") -> None:
        self.gw = gateway

    @property
    def store(self):  # type: ignore[no-untyped-def]
        return self.gw.store

    # --- plumbing ------------------------------------------------------------------------------

    def handler(self, method: str, fn: Callable[..., Awaitable[Any]], *, public: bool = False, any_key: bool = False) -> Handler:
        """An admin route: method check, authentication (master key or admin UI session), JSON body, errors.

        ``any_key``: a virtual key may call it too; ``fn`` then gets a third argument, the caller's
        identity (None for the master key or a UI session), and decides what that key may see.
        """
        methods = {method} if method != "GET|POST" else {"GET", "POST"}

        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["method"] not in methods:
                await send_error(send, FMT, GatewayError(ErrorKind.METHOD_NOT_ALLOWED, f"{scope['path']} accepts {method}."))
                return
            try:
                caller: Identity | None = None
                if any_key:
                    caller = await self.caller(scope)
                elif not public:
                    await self.require_master(scope)
                body = Body(await self._json(receive) if scope["method"] == "POST" else {})
                query = _query(scope)
                result = await (fn(body, query, caller) if any_key else fn(body, query))
            except GatewayError as error:
                await send_error(send, FMT, error)
                return
            except IntegrityViolation as exc:
                await send_error(send, FMT, bad_request(f"Conflicts with an existing record: {_integrity_message(exc)}."))
                return
            except DatabaseUnavailable:
                error = GatewayError(ErrorKind.UNAVAILABLE, "keystile cannot reach its database right now; retry shortly.")
                await send_error(send, FMT, error)
                return
            if isinstance(result, bytes):
                await send_bytes(send, 200, result, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")])
            elif isinstance(result, tuple):
                status, payload = result
                await send_json(send, status, payload)
            else:
                await send_json(send, 200, result)

        return handle

    async def require_master(self, scope: Scope) -> None:
        if await self.gw.ui_sessions.admits(scope):  # the admin UI's own calls, CSRF-checked
            return
        identity = await self.gw.authenticator.authenticate(resolve_credentials(scope["headers"]))
        if not identity.is_master:
            raise GatewayError(ErrorKind.PERMISSION, "This endpoint needs the master key; a virtual key cannot manage keystile.")

    async def caller(self, scope: Scope) -> Identity | None:
        """None for an admin (master key or UI session), else the virtual key's identity."""
        if await self.gw.ui_sessions.admits(scope):
            return None
        identity = await self.gw.authenticator.authenticate(resolve_credentials(scope["headers"]))
        return None if identity.is_master else identity

    @staticmethod
    async def _json(receive: Receive) -> dict[str, Any]:
        raw = await read_body(receive, _ADMIN_BODY_LIMIT)
        if not raw.strip():
            return {}
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise bad_request(f"The request body is not valid JSON: {exc}.") from None
        if not isinstance(data, dict):
            raise bad_request("The request body must be a JSON object.")
        return data

    # --- views -------------------------------------------------------------------------------

    def _standing(self, kind: str, ident: str, record: Any) -> tuple[float, float | None]:
        """(spend, budget_reset_at) as the budget check sees them now, not as last written."""
        return self.gw.ledger.standing((kind, ident), record, self.gw.clock.now())

    def key_view(self, key: KeyRecord) -> dict[str, Any]:
        spend, reset_at = self._standing("key", key.id, key)
        return {
            "token": key.token_hash,
            "key_id": key.id,
            "key_name": key.key_name,
            "key_alias": key.key_alias,
            "models": key.models,
            "spend": spend,
            "max_budget": key.max_budget,
            "soft_budget": key.soft_budget,
            "remaining_budget": None if key.max_budget is None else max(key.max_budget - spend, 0.0),
            "budget_duration": key.budget_duration,
            "budget_reset_at": _iso(reset_at),
            "rpm_limit": key.rpm_limit,
            "tpm_limit": key.tpm_limit,
            "max_parallel_requests": key.max_parallel_requests,
            "model_rpm_limit": key.model_rpm_limit,
            "model_tpm_limit": key.model_tpm_limit,
            "expires": _iso(key.expires_at),
            "blocked": key.blocked,
            "metadata": key.metadata,
            "user_id": key.user_id,
            "team_id": key.team_id,
            "created_at": _iso(key.created_at),
            "updated_at": _iso(key.updated_at),
        }

    def user_view(self, user: UserRecord) -> dict[str, Any]:
        spend, reset_at = self._standing("user", user.user_id, user)
        return {
            "user_id": user.user_id,
            "user_alias": user.user_alias,
            "user_email": user.user_email,
            "models": user.models,
            "spend": spend,
            "max_budget": user.max_budget,
            "soft_budget": user.soft_budget,
            "remaining_budget": None if user.max_budget is None else max(user.max_budget - spend, 0.0),
            "budget_duration": user.budget_duration,
            "budget_reset_at": _iso(reset_at),
            "rpm_limit": user.rpm_limit,
            "tpm_limit": user.tpm_limit,
            "max_parallel_requests": user.max_parallel_requests,
            "metadata": user.metadata,
            "created_at": _iso(user.created_at),
            "updated_at": _iso(user.updated_at),
        }

    def team_view(self, team: TeamRecord) -> dict[str, Any]:
        spend, reset_at = self._standing("team", team.team_id, team)
        roles = {m.user_id: m for m in team.members_with_roles}
        members = [roles.get(user_id) or TeamMember(user_id) for user_id in team.members]
        return {
            "team_id": team.team_id,
            "team_alias": team.team_alias,
            "models": team.models,
            "spend": spend,
            "max_budget": team.max_budget,
            "soft_budget": team.soft_budget,
            "remaining_budget": None if team.max_budget is None else max(team.max_budget - spend, 0.0),
            "budget_duration": team.budget_duration,
            "budget_reset_at": _iso(reset_at),
            "rpm_limit": team.rpm_limit,
            "tpm_limit": team.tpm_limit,
            "max_parallel_requests": team.max_parallel_requests,
            "blocked": team.blocked,
            "members": team.members,
            "members_with_roles": [{"user_id": m.user_id, "user_email": m.user_email, "role": m.role} for m in members],
            "metadata": team.metadata,
            "created_at": _iso(team.created_at),
            "updated_at": _iso(team.updated_at),
        }

    def _budget_changed(self, entity: tuple[str, str], changes: dict[str, Any]) -> None:
        """Bring the in-memory budget in step with an admin change without losing unwritten spend.

        Setting ``spend`` replaces it (what was pending is dropped with it); a new
        ``budget_duration`` starts a new period now and keeps the spend.
        """
        ledger = self.gw.ledger
        self.gw.share_budget_change(entity, changes)
        if changes.get("spend") is not None:
            ledger.set_spend(entity, changes["spend"])
        if "budget_reset_at" in changes:
            ledger.set_period(entity, period_seconds(changes.get("budget_duration")), changes["budget_reset_at"])

    def _periods(self, changes: dict[str, Any]) -> dict[str, Any]:
        """A new ``budget_duration`` starts its first period now."""
        if "budget_duration" in changes:
            period = period_seconds(changes["budget_duration"])
            changes["budget_reset_at"] = self.gw.clock.now() + period if period else None
        return changes

    # --- keys --------------------------------------------------------------------------------

    async def _find_key(self, ref: str | None, *, param: str = "key") -> KeyRecord:
        if not ref:
            raise bad_request(f"{param}: required (the key, or its hash).", param)
        token_hash = ref if _HASH.match(ref) else hash_key(ref)
        key = await self.store.get_key(token_hash)
        if key is None:
            raise _not_found(f"Key {ref if _HASH.match(ref) else mask(ref)} not found.")
        return key

    async def _check_team(self, team_id: str | None) -> None:
        if team_id is not None and await self.store.get_team(team_id) is None:
            raise bad_request(f"team_id: team {_quote(team_id)} does not exist; create it with /team/new first.", "team_id")

    def _custom_key(self, body: Body, name: str) -> str | None:
        """A key value the admin chose, if it is one keystile can accept (``auth.custom_key_problem``)."""
        raw = body.data.get(name)
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise bad_request(f"{name}: expected a string.", name)
        problem = custom_key_problem(raw, self.gw.authenticator.master_key_hash)
        if problem is not None:
            raise bad_request(f"{name}: {problem}.", name)
        return raw

    async def key_generate(self, body: Body, query: dict) -> dict:
        fields, duration = new_key_fields(body.data)
        raw = self._custom_key(body, "key") or generate_key()
        await self._check_team(fields.get("team_id"))
        record = build_key(raw, fields, self.gw.clock.now(), duration)
        if await self.store.get_key(record.token_hash) is not None:
            raise bad_request("key: a key with this value already exists.", "key")
        answer = {"key": raw, **self.key_view(record), "expires": _iso(record.expires_at)}
        await self.store.insert_key(record)
        await self.gw.changed(record.token_hash)
        return {**answer, "key_id": record.id}

    async def key_info(self, body: Body, query: dict, caller: Identity | None = None) -> dict:
        """A key's record. A virtual key may read its own (LiteLLM allows it): with no ``key``, or naming itself."""
        ref = query.get("key") or body.string("key")
        if caller is None:
            key = await self._find_key(ref)
        else:
            key = await self.store.get_key_by_id(caller.key_id)
            if key is None:
                raise _not_found("Key not found.")
            if ref and (ref if _HASH.match(ref) else hash_key(ref)) not in (key.token_hash, key.id):
                raise GatewayError(ErrorKind.PERMISSION, "A virtual key may read only its own /key/info; use the master key for others.")
        return {"key": key.token_hash, "info": self.key_view(key)}

    async def key_update(self, body: Body, query: dict) -> dict:
        key = await self._find_key(body.string("key"))
        changes = self._periods(_read_fields(body, _KEY_READERS))
        await self._check_team(changes.get("team_id"))
        if body.has("duration"):
            duration = body.duration("duration")
            changes["expires_at"] = self.gw.clock.now() + parse_duration(duration) if duration else None
        self.key_view(dataclasses.replace(key, **changes))  # the answer can be built before anything is stored
        updated = await self.store.update_key(key.token_hash, changes)
        if updated is None:
            raise _not_found("Key not found.")
        self._budget_changed(("key", updated.id), changes)
        await self.gw.changed(key.token_hash)
        return self.key_view(updated)

    async def key_delete(self, body: Body, query: dict) -> dict:
        refs = body.strings("keys") or []
        aliases = body.strings("key_aliases") or []
        if not refs and not aliases:
            raise bad_request("keys: give a list of keys (or their hashes) to delete.", "keys")
        hashes = [r if _HASH.match(r) else hash_key(r) for r in refs]
        for alias in aliases:
            found = await self.store.find_key_by_alias(alias)
            if found is not None:
                hashes.append(found.token_hash)
        ids = {}
        for token_hash in dict.fromkeys(hashes):
            found = await self.store.get_key(token_hash)
            if found is not None:
                ids[token_hash] = found.id
        deleted = await self.store.delete_keys(hashes)
        if not deleted:
            raise _not_found("None of the given keys exist.")
        for token_hash in deleted:
            self.gw.ledger.forget(("key", ids.get(token_hash, token_hash)))
        await self.gw.changed()
        return {"deleted_keys": deleted}

    async def key_list(self, body: Body, query: dict) -> dict:
        page = positive_int(query.get("page"), 1, "page", PAGE_MAX)
        size = min(positive_int(query.get("size"), 100, "size"), 1000)
        search = query.get("key_alias") or None  # a part of the alias (or masked key, user, team)
        keys = await self.store.list_keys(
            user_id=query.get("user_id"), team_id=query.get("team_id"), search=search, limit=size, offset=(page - 1) * size
        )
        total = await self.store.count_keys(user_id=query.get("user_id"), team_id=query.get("team_id"), search=search)
        full = query.get("return_full_object", "false").lower() == "true"
        return {
            "keys": [self.key_view(k) for k in keys] if full else [k.token_hash for k in keys],
            "total_count": total,
            "current_page": page,
            "total_pages": max(1, math.ceil(total / size)),
        }

    async def key_regenerate(self, body: Body, query: dict) -> dict:
        """A new secret for the same key. Its id, spend, budget, limits and spend log stay; requests
        in flight under the old secret are charged to it when they end."""
        key = await self._find_key(query.get("key") or body.string("key"))
        changes = self._periods(_read_fields(body, _KEY_READERS))
        await self._check_team(changes.get("team_id"))
        custom = self._custom_key(body, "new_key")
        raw = custom or generate_key()
        new_hash = hash_key(raw)
        if new_hash != key.token_hash and await self.store.get_key(new_hash) is not None:
            raise bad_request("new_key: a key with this value already exists.", "new_key")
        self.key_view(dataclasses.replace(key, **changes))  # the answer can be built before anything is stored
        updated = await self.store.rekey(key.token_hash, new_hash, mask(raw), changes)
        if updated is None:
            raise _not_found("Key not found.")
        self._budget_changed(("key", updated.id), changes)
        # A chosen secret may sit in caches as an unknown key: drop everything then.
        await self.gw.changed(None if custom else key.token_hash)
        return {"key": raw, **self.key_view(updated)}

    async def _set_blocked(self, body: Body, blocked: bool) -> dict:
        key = await self._find_key(body.string("key"))
        updated = await self.store.update_key(key.token_hash, {"blocked": blocked})
        if updated is None:
            raise _not_found("Key not found.")
        await self.gw.changed(key.token_hash)
        return self.key_view(updated)

    async def key_block(self, body: Body, query: dict) -> dict:
        return await self._set_blocked(body, True)

    async def key_unblock(self, body: Body, query: dict) -> dict:
        return await self._set_blocked(body, False)

    # --- users -------------------------------------------------------------------------------

    async def user_new(self, body: Body, query: dict) -> dict:
        fields = _read_fields(body, _USER_READERS)
        user_id = body.string("user_id") or str(uuid.uuid4())
        if await self.store.get_user(user_id) is not None:
            raise bad_request(f"user_id: user {_quote(user_id)} already exists.", "user_id")
        now = self.gw.clock.now()
        teams = list(dict.fromkeys(body.strings("teams") or []))
        for team_id in teams:  # before anything is written: a bad team id leaves no half-made user
            await self._check_team(team_id)
        auto_create_key = body.boolean("auto_create_key") is not False  # LiteLLM creates a key for a new user by default
        record = UserRecord(user_id=user_id, **fields)
        period = period_seconds(record.budget_duration)
        record.budget_reset_at = now + period if period else None
        result = {**self.user_view(record), "teams": teams}
        await self.store.insert_user(record)
        for team_id in teams:
            await self.store.add_team_member(team_id, user_id)
        if auto_create_key:
            raw = generate_key()
            key = KeyRecord(token_hash=hash_key(raw), key_name=mask(raw), user_id=user_id, models=list(record.models))
            await self.store.insert_key(key)
            result.update(key=raw, token=key.token_hash)
        await self.gw.changed()
        return result

    async def _find_user(self, user_id: str | None) -> UserRecord:
        if not user_id:
            raise bad_request("user_id: required.", "user_id")
        user = await self.store.get_user(user_id)
        if user is None:
            raise _not_found(f"User {_quote(user_id)} not found.")
        return user

    async def user_info(self, body: Body, query: dict) -> dict:
        user = await self._find_user(query.get("user_id") or body.string("user_id"))
        keys = await self.store.list_keys(user_id=user.user_id, limit=1000)
        teams = [t for t in await self.store.list_teams(limit=10_000) if user.user_id in t.members]
        return {
            "user_id": user.user_id,
            "user_info": {**self.user_view(user), "teams": [t.team_id for t in teams]},
            "keys": [self.key_view(k) for k in keys],
            "teams": [self.team_view(t) for t in teams],
        }

    async def user_update(self, body: Body, query: dict) -> dict:
        user = await self._find_user(body.string("user_id"))
        changes = self._periods(_read_fields(body, _USER_READERS))
        self.user_view(dataclasses.replace(user, **changes))
        updated = await self.store.update_user(user.user_id, changes)
        if updated is None:
            raise _not_found(f"User {_quote(user.user_id)} not found.")
        self._budget_changed(("user", user.user_id), changes)
        await self.gw.changed()
        return self.user_view(updated)

    async def user_delete(self, body: Body, query: dict) -> dict:
        ids = body.strings("user_ids")
        if not ids:
            raise bad_request("user_ids: give a list of user ids to delete.", "user_ids")
        deleted = await self.store.delete_users(ids)
        if not deleted:
            raise _not_found("None of the given users exist.")
        for user_id in deleted:
            self.gw.ledger.forget(("user", user_id))
        await self.gw.changed()
        return {"deleted_users": deleted}

    async def user_list(self, body: Body, query: dict) -> dict:
        page = positive_int(query.get("page"), 1, "page", PAGE_MAX)
        size = min(positive_int(query.get("page_size"), 100, "page_size"), 1000)
        users = await self.store.list_users(limit=size, offset=(page - 1) * size)
        return {"users": [self.user_view(u) for u in users], "page": page, "page_size": size}

    # --- teams -------------------------------------------------------------------------------

    async def _resolve_members(self, wanted: list["_Member"], param: str) -> tuple[list[TeamMember], list[UserRecord]]:
        """Members as LiteLLM takes them (by ``user_id`` or ``user_email``), resolved to user ids
        without writing anything; returns them and the users to create (LiteLLM creates a member
        it does not know)."""
        members: dict[str, TeamMember] = {}
        to_create: dict[str, UserRecord] = {}
        for member in wanted:
            user_id = member.user_id
            if user_id is None:
                assert member.user_email is not None
                found = await self.store.find_users_by_email(member.user_email)
                if len(found) > 1:
                    raise bad_request(
                        f"{param}: several users have the e-mail {_quote(member.user_email)}; give the member's user_id instead.",
                        param,
                    )
                pending = next((u for u in to_create.values() if u.user_email == member.user_email), None)
                user = found[0] if found else pending or UserRecord(user_id=str(uuid.uuid4()), user_email=member.user_email)
                user_id = user.user_id
                if not found:
                    to_create[user_id] = user
            elif user_id not in to_create:
                user = await self.store.get_user(user_id)
                if user is None:
                    user = to_create[user_id] = UserRecord(user_id=user_id, user_email=member.user_email)
            else:
                user = to_create[user_id]
            members[user_id] = TeamMember(user_id, member.role, user.user_email)
        return list(members.values()), list(to_create.values())

    async def _create_users(self, users: list[UserRecord]) -> None:
        for user in users:
            try:
                await self.store.insert_user(user)
            except IntegrityViolation:
                pass  # created meanwhile

    async def team_new(self, body: Body, query: dict) -> dict:
        fields = _read_fields(body, _TEAM_READERS)
        team_id = body.string("team_id") or str(uuid.uuid4())
        wanted = _members_in(body, "members_with_roles", body.data.get("members_with_roles"), allow_missing=True)
        wanted = [_Member(user_id, None, "user") for user_id in body.strings("members") or []] + wanted
        if await self.store.get_team(team_id) is not None:
            raise bad_request(f"team_id: team {_quote(team_id)} already exists.", "team_id")
        members, new_users = await self._resolve_members(wanted, "members_with_roles")
        record = TeamRecord(team_id=team_id, **fields)
        period = period_seconds(record.budget_duration)
        record.budget_reset_at = self.gw.clock.now() + period if period else None
        record.members = sorted(m.user_id for m in members)
        record.members_with_roles = members
        answer = self.team_view(record)
        await self._create_users(new_users)
        await self.store.insert_team(record)
        await self.gw.changed()
        return answer

    async def _find_team(self, team_id: str | None) -> TeamRecord:
        if not team_id:
            raise bad_request("team_id: required.", "team_id")
        team = await self.store.get_team(team_id)
        if team is None:
            raise _not_found(f"Team {_quote(team_id)} not found.")
        return team

    async def team_info(self, body: Body, query: dict) -> dict:
        team = await self._find_team(query.get("team_id") or body.string("team_id"))
        keys = await self.store.list_keys(team_id=team.team_id, limit=1000)
        return {"team_id": team.team_id, "team_info": self.team_view(team), "keys": [self.key_view(k) for k in keys]}

    async def team_update(self, body: Body, query: dict) -> dict:
        team = await self._find_team(body.string("team_id"))
        changes = self._periods(_read_fields(body, _TEAM_READERS))
        self.team_view(dataclasses.replace(team, **changes))
        updated = await self.store.update_team(team.team_id, changes)
        if updated is None:
            raise _not_found(f"Team {_quote(team.team_id)} not found.")
        self._budget_changed(("team", team.team_id), changes)
        await self.gw.changed()
        return self.team_view(updated)

    async def team_delete(self, body: Body, query: dict) -> dict:
        ids = body.strings("team_ids")
        if not ids:
            raise bad_request("team_ids: give a list of team ids to delete.", "team_ids")
        deleted = await self.store.delete_teams(ids)
        if not deleted:
            raise _not_found("None of the given teams exist.")
        for team_id in deleted:
            self.gw.ledger.forget(("team", team_id))
        await self.gw.changed()
        return {"deleted_teams": deleted}

    async def team_list(self, body: Body, query: dict) -> list:
        return [self.team_view(t) for t in await self.store.list_teams(limit=10_000)]

    async def team_member_add(self, body: Body, query: dict) -> dict:
        """LiteLLM's shape: ``member`` is one ``{"user_id" | "user_email", "role"}`` or a list of them."""
        team = await self._find_team(body.string("team_id"))
        members, new_users = await self._resolve_members(_members_in(body, "member", body.data.get("member")), "member")
        await self._create_users(new_users)
        for member in members:
            await self.store.add_team_member(team.team_id, member.user_id, member.role)
        await self.gw.changed()
        return self.team_view(await self._find_team(team.team_id))

    async def team_member_delete(self, body: Body, query: dict) -> dict:
        team = await self._find_team(body.string("team_id"))
        user_id = body.string("user_id")
        email = body.string("user_email", EMAIL_CHARS)
        if not user_id and email:
            user_id = next((m.user_id for m in team.members_with_roles if m.user_email == email), None)
            if user_id is None:
                raise _not_found(f"No member of team {_quote(team.team_id)} has the e-mail {_quote(email)}.")
        if not user_id:
            raise bad_request("user_id: required (or user_email).", "user_id")
        if not await self.store.remove_team_member(team.team_id, user_id):
            raise _not_found(f"User {_quote(user_id)} is not a member of team {_quote(team.team_id)}.")
        await self.gw.changed()
        return self.team_view(await self._find_team(team.team_id))

    async def _team_blocked(self, body: Body, blocked: bool) -> dict:
        team = await self._find_team(body.string("team_id"))
        updated = await self.store.update_team(team.team_id, {"blocked": blocked})
        if updated is None:
            raise _not_found(f"Team {_quote(team.team_id)} not found.")
        await self.gw.changed()
        return self.team_view(updated)

    async def team_block(self, body: Body, query: dict) -> dict:
        return await self._team_blocked(body, True)

    async def team_unblock(self, body: Body, query: dict) -> dict:
        return await self._team_blocked(body, False)

    # --- spend -------------------------------------------------------------------------------

    async def spend_logs(self, body: Body, query: dict) -> list:
        """Filtered by ``api_key`` (a key or its hash: its rows under every secret it has had), user, team, …"""
        key_id = None
        key = query.get("api_key") or query.get("key")
        if key:
            token_hash = key if _HASH.match(key) else hash_key(key)
            record = await self.store.get_key(token_hash)
            key_id = record.id if record is not None else token_hash  # a key id, or a deleted key's hash
        start = _time_param(query.get("start_date"), "start_date")
        end = _time_param(query.get("end_date"), "end_date")
        limit = min(positive_int(query.get("limit"), 1000, "limit"), 100_000)
        await self.gw.writer.flush()  # include what is still in memory
        rows = await self.store.spend_logs(
            key_id=key_id,
            user_id=query.get("user_id"),
            team_id=query.get("team_id"),
            model=query.get("model"),
            start=start,
            end=end,
            request_id=query.get("request_id"),
            limit=limit,
        )
        return [_log_view(row) for row in rows]

    # --- operations --------------------------------------------------------------------------

    async def liveliness(self, body: Body, query: dict) -> dict:
        return {"status": "alive"}

    async def readiness(self, body: Body, query: dict) -> tuple[int, dict]:
        """200 while this instance can serve: "ready", or "degraded" with what is missing; 503 when it cannot.

        A database outage is reported but stays 200 for ``store_outage_grace``: every instance
        shares the database, and a balancer that took them all out would refuse the traffic
        that cached keys can still serve. A Redis outage never makes an instance unready.
        """
        health = self.gw.store_health
        report: dict[str, Any] = {"status": "ready", "db": "connected"}
        try:
            await asyncio.wait_for(self.store.ping(), timeout=2.0)
        except Exception as exc:
            health.failed(exc)
            report.update(status="degraded", db=f"unreachable: {type(exc).__name__}", db_outage_seconds=round(health.outage_seconds(), 1))
        else:
            health.ok()
        shared = self.gw.shared
        if shared is not None:
            report["redis"] = "connected" if shared.link.up else "unreachable: rate limits and budgets are per instance"
            if not shared.link.up:
                report["status"] = "degraded"
        if health.down and health.outage_seconds() > self.gw.settings.store_outage_grace:
            return 503, {**report, "status": "unavailable"}
        return 200, report

    async def metrics(self, body: Body, query: dict) -> bytes:
        return self.gw.metrics.render()

    async def test_clock(self, body: Body, query: dict) -> dict:
        if not self.gw.test_clock:
            raise _not_found("No route.")
        seconds = body.number("advance", DURATION_MAX) or 0.0
        return {"now": self.gw.clock.advance(seconds)}


def _query(scope: Scope) -> dict[str, str]:
    """The query string's parameters (the last value of each), checked like body strings: a NUL
    (``%00``) or an oversized value is a 400 naming the parameter."""
    raw = scope.get("query_string", b"")
    if not raw:
        return {}
    query = {k: v[-1] for k, v in parse_qs(raw.decode("latin-1")).items()}
    for name, value in query.items():
        checked_text(name[:QUOTE_CHARS], value, QUERY_VALUE_CHARS)
    return query


@dataclasses.dataclass(frozen=True, slots=True)
class _Member:
    user_id: str | None
    user_email: str | None
    role: str


def _members_in(body: Body, name: str, value: object, *, allow_missing: bool = False) -> list[_Member]:
    """LiteLLM ``Member`` objects: ``{"user_id"?, "user_email"?, "role": "admin" | "user"}``, one or a list."""
    shape = f'{name}: expected {{"user_id" or "user_email": "...", "role": "admin" or "user"}}' + (
        " or a list of them." if name == "member" else ", in a list."
    )
    if allow_missing and (value is None or value == []):
        return []
    entries = value if isinstance(value, list) else [value] if name == "member" else None
    if not entries or not all(isinstance(m, dict) for m in entries):
        raise bad_request(shape, name)
    if len(entries) > LIST_MAX:
        raise bad_request(f"{name}: at most {LIST_MAX} members, got {len(entries)}.", name)
    out = []
    for entry in entries:
        user_id, email, role = entry.get("user_id"), entry.get("user_email"), entry.get("role", "user")
        if role is None:
            role = "user"
        if user_id is None and email is None:
            raise bad_request(f"{name}: each member needs a user_id or a user_email.", name)
        if not all(v is None or isinstance(v, str) for v in (user_id, email)) or not isinstance(role, str):
            raise bad_request(shape, name)
        if role not in TEAM_ROLES:
            raise bad_request(f"{name}: role must be \"admin\" or \"user\", got {_quote(role)}.", name)
        if user_id is not None:
            checked_text(name, user_id)
        if email is not None:
            checked_text(name, email, EMAIL_CHARS)
        out.append(_Member(user_id or None, email or None, role))
    if any(m.user_id is None and m.user_email is None for m in out):
        raise bad_request(f"{name}: each member needs a user_id or a user_email.", name)
    return out


def positive_int(raw: str | None, default: int, name: str, maximum: int | None = None) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name}: expected a positive integer.", name) from None
    if value < 1:
        raise bad_request(f"{name}: expected a positive integer.", name)
    if maximum is not None and value > maximum:
        raise bad_request(f"{name}: at most {maximum}.", name)
    return value


def _time_param(raw: str | None, name: str) -> float | None:
    """Unix seconds, or an ISO date / date-time (UTC), within the years 1 to 9999."""
    if raw is None:
        return None
    from datetime import datetime, timezone

    try:
        value = float(raw)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            value = parsed.timestamp()
        except (ValueError, OverflowError, OSError):
            raise bad_request(f"{name}: expected Unix seconds or an ISO date such as 2026-11-01.", name) from None
    if not TIME_MIN <= value <= TIME_MAX:  # also NaN and infinities
        raise bad_request(f"{name}: expected a time between the years 1 and 9999.", name)
    return value


def _log_view(row: SpendLogRow) -> dict[str, Any]:
    prompt_tokens = row.input_tokens + row.cache_read_tokens + row.cache_write_tokens
    return {
        "request_id": row.request_id,
        "call_type": row.call_type or "",
        "startTime": _iso(row.ts),
        "endTime": _iso(row.ts + row.latency_ms / 1000.0),
        "ts": row.ts,
        "api_key": row.key_id,
        "key_alias": row.key_alias,
        "user": row.user_id,
        "team_id": row.team_id,
        "model": row.model,
        "model_group": row.model_group,
        "deployment": row.deployment,
        "provider": row.provider,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": row.output_tokens,
        "total_tokens": prompt_tokens + row.output_tokens,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cache_read_tokens": row.cache_read_tokens,
        "cache_write_tokens": row.cache_write_tokens,
        "spend": row.cost,
        "status": row.status,
        "latency_ms": row.latency_ms,
        "stream": row.stream,
        "attempts": row.attempts,
        "requests": row.requests,
        "request": row.request_content,
        "response": row.response_content,
        "request_tags": row.request_tags or [],
        "metadata": {
            "user_api_key": row.key_id,
            "user_api_key_alias": row.key_alias,
            "user_api_key_user_id": row.user_id,
            "user_api_key_team_id": row.team_id,
            "model_group": row.model_group,
            "deployment": row.deployment,
            "attempts": row.attempts,
            "status": "success" if row.status < 400 else "failure",
            "status_code": row.status,
            "cache_read_input_tokens": row.cache_read_tokens,
            "cache_creation_input_tokens": row.cache_write_tokens,
        },
    }


def _integrity_message(exc: IntegrityViolation) -> str:
    text = str(exc)
    if "key_alias" in text:
        return "key_alias is already used by another key"
    return "a record with this id already exists"


def routes(gateway: "Gateway") -> dict[str, Handler]:
    admin = Admin(gateway)
    h = admin.handler
    table = {
        "/key/generate": h("POST", admin.key_generate),
        "/key/info": h("GET", admin.key_info, any_key=True),
        "/key/update": h("POST", admin.key_update),
        "/key/delete": h("POST", admin.key_delete),
        "/key/list": h("GET", admin.key_list),
        "/key/regenerate": h("POST", admin.key_regenerate),
        "/key/{key}/regenerate": dynamic_key_route(h("POST", admin.key_regenerate)),
        "/key/block": h("POST", admin.key_block),
        "/key/unblock": h("POST", admin.key_unblock),
        "/user/new": h("POST", admin.user_new),
        "/user/info": h("GET", admin.user_info),
        "/user/update": h("POST", admin.user_update),
        "/user/delete": h("POST", admin.user_delete),
        "/user/list": h("GET", admin.user_list),
        "/team/new": h("POST", admin.team_new),
        "/team/info": h("GET", admin.team_info),
        "/team/update": h("POST", admin.team_update),
        "/team/delete": h("POST", admin.team_delete),
        "/team/list": h("GET", admin.team_list),
        "/team/member_add": h("POST", admin.team_member_add),
        "/team/member_delete": h("POST", admin.team_member_delete),
        "/team/block": h("POST", admin.team_block),
        "/team/unblock": h("POST", admin.team_unblock),
        "/spend/logs": h("GET", admin.spend_logs),
        "/health/liveliness": h("GET", admin.liveliness, public=True),
        "/health/liveness": h("GET", admin.liveliness, public=True),
        "/health/readiness": h("GET", admin.readiness, public=True),
        "/metrics": h("GET", admin.metrics, public=True),
        "/keystile/test/clock": h("POST", admin.test_clock),
    }
    # The admin UI, the reports and the models API live in their own modules, on the same plumbing.
    from keystile.server import admin_models, admin_spend, openapi, ui

    table.update(admin_spend.routes(admin))
    table.update(admin_models.routes(admin))
    table.update(ui.routes(admin))
    table.update(openapi.routes(admin))
    return table


def dynamic_key_route(handler: Handler) -> Handler:
    """``/key/{key}/regenerate`` (LiteLLM's path form): the key comes from the path, as if in the query."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        ref = scope["path"].removeprefix("/key/").rstrip("/").removesuffix("/regenerate")
        from urllib.parse import quote, unquote

        query = f"key={quote(unquote(ref), safe='')}".encode()
        await handler({**scope, "query_string": query}, receive, send)

    return handle


def key_path_route(path: str) -> str | None:
    """The table entry serving ``path`` when it names a key in the path (``/key/sk-…/regenerate``)."""
    if path.startswith("/key/") and path.endswith("/regenerate") and path.count("/") == 3:
        return "/key/{key}/regenerate"
    return None
