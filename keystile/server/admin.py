"""The admin API, shaped like LiteLLM's so existing scripts keep working. Master key only.

Keys (``/key/*``), users (``/user/*``), teams (``/team/*``), spend (``/spend/logs``), and
the operational endpoints (``/health*``, ``/metrics``). Every change that affects who may
call takes effect on the next request: the local key cache is dropped at once and other
processes notice the store's revision counter (or the Redis broadcast) within a second.
Raw keys appear only in the response that creates or regenerates them.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import uuid
from typing import TYPE_CHECKING, Any, Awaitable, Callable
from urllib.parse import parse_qs

import orjson

from keystile.apiformat import ApiFormat
from keystile.auth import KEY_PREFIX, generate_key, hash_key
from keystile.credentials import mask, resolve_credentials, upstream_credential_kind
from keystile.durations import parse_duration
from keystile.errors import ErrorKind, GatewayError
from keystile.limits.budgets import period_seconds
from keystile.server.http import Receive, Scope, Send, read_body, send_bytes, send_error, send_json
from keystile.store.database import DatabaseUnavailable, IntegrityViolation
from keystile.store.keys import build_key
from keystile.store.records import KeyRecord, SpendLogRow, TeamRecord, UserRecord

if TYPE_CHECKING:
    from keystile.server.app import Gateway

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
_HASH = re.compile(r"^[0-9a-f]{64}$")
_ADMIN_BODY_LIMIT = 1 << 20
FMT = ApiFormat.OPENAI  # LiteLLM's admin API answers errors in OpenAI's shape


def _iso(ts: float | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _bad(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(ErrorKind.INVALID_REQUEST, message, param=param)


def _not_found(message: str) -> GatewayError:
    return GatewayError(ErrorKind.NOT_FOUND, message)


class Body:
    """Typed reads from an admin request's JSON object; a wrong type is a 400 naming the field."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def has(self, name: str) -> bool:
        return name in self.data

    def string(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is not None and not isinstance(value, str):
            raise _bad(f"{name}: expected a string.", name)
        return value

    def integer(self, name: str, minimum: int = 0) -> int | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _bad(f"{name}: expected an integer of at least {minimum}.", name)
        return value

    def number(self, name: str) -> float | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
            raise _bad(f"{name}: expected a non-negative number.", name)
        return float(value)

    def boolean(self, name: str) -> bool | None:
        value = self.data.get(name)
        if value is not None and not isinstance(value, bool):
            raise _bad(f"{name}: expected true or false.", name)
        return value

    def strings(self, name: str) -> list[str] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad(f"{name}: expected a list of strings.", name)
        return value

    def mapping(self, name: str) -> dict | None:
        value = self.data.get(name)
        if value is not None and not isinstance(value, dict):
            raise _bad(f"{name}: expected an object.", name)
        return value

    def int_mapping(self, name: str) -> dict[str, int] | None:
        value = self.mapping(name)
        if value is not None and not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value.values()):
            raise _bad(f"{name}: expected an object of model name to a positive integer.", name)
        return value

    def duration(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is None:
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise _bad(f"{name}: {exc}.", name) from None
        if seconds <= 0:
            raise _bad(f"{name}: must be longer than zero.", name)
        return str(value)


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
_USER_READERS = {**_LIMIT_READERS, "user_alias": Body.string, "user_email": Body.string, "spend": Body.number}
_TEAM_READERS = {**_LIMIT_READERS, "team_alias": Body.string, "blocked": Body.boolean, "spend": Body.number}


def _read_fields(body: Body, readers: dict[str, Callable[[Body, str], Any]]) -> dict[str, Any]:
    return {name: reader(body, name) for name, reader in readers.items() if body.has(name)}


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

    def handler(self, method: str, fn: Callable[..., Awaitable[Any]], *, public: bool = False) -> Handler:
        methods = {method} if method != "GET|POST" else {"GET", "POST"}

        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["method"] not in methods:
                await send_error(send, FMT, GatewayError(ErrorKind.METHOD_NOT_ALLOWED, f"{scope['path']} accepts {method}."))
                return
            try:
                if not public:
                    await self.require_master(scope)
                body = Body(await self._json(receive) if scope["method"] == "POST" else {})
                query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
                result = await fn(body, query)
            except GatewayError as error:
                await send_error(send, FMT, error)
                return
            except IntegrityViolation as exc:
                await send_error(send, FMT, _bad(f"Conflicts with an existing record: {_integrity_message(exc)}."))
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
        identity = await self.gw.authenticator.authenticate(resolve_credentials(scope["headers"]))
        if not identity.is_master:
            raise GatewayError(ErrorKind.PERMISSION, "This endpoint needs the master key; a virtual key cannot manage keystile.")

    @staticmethod
    async def _json(receive: Receive) -> dict[str, Any]:
        raw = await read_body(receive, _ADMIN_BODY_LIMIT)
        if not raw.strip():
            return {}
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _bad(f"The request body is not valid JSON: {exc}.") from None
        if not isinstance(data, dict):
            raise _bad("The request body must be a JSON object.")
        return data

    # --- views -------------------------------------------------------------------------------

    def _standing(self, kind: str, ident: str, record: Any) -> tuple[float, float | None]:
        """(spend, budget_reset_at) as the budget check sees them now, not as last written."""
        return self.gw.ledger.standing((kind, ident), record, self.gw.clock.now())

    def key_view(self, key: KeyRecord) -> dict[str, Any]:
        spend, reset_at = self._standing("key", key.token_hash, key)
        return {
            "token": key.token_hash,
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
            "members_with_roles": [{"user_id": m, "role": "user"} for m in team.members],
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

    # --- keys --------------------------------------------------------------------------------

    async def _find_key(self, ref: str | None, *, param: str = "key") -> KeyRecord:
        if not ref:
            raise _bad(f"{param}: required (the key, or its hash).", param)
        token_hash = ref if _HASH.match(ref) else hash_key(ref)
        key = await self.store.get_key(token_hash)
        if key is None:
            raise _not_found(f"Key {ref if _HASH.match(ref) else mask(ref)} not found.")
        return key

    async def _check_team(self, team_id: str | None) -> None:
        if team_id is not None and await self.store.get_team(team_id) is None:
            raise _bad(f"team_id: team {team_id!r} does not exist; create it with /team/new first.", "team_id")

    async def key_generate(self, body: Body, query: dict) -> dict:
        fields, duration = new_key_fields(body.data)
        raw = body.string("key")
        if raw is not None:
            if len(raw) < 8 or any(c.isspace() for c in raw):
                raise _bad("key: a custom key needs at least 8 characters and no spaces.", "key")
            if upstream_credential_kind(raw) is not None:
                raise _bad("key: this looks like an Anthropic credential and would never be accepted as a gateway key.", "key")
        raw = raw or generate_key()
        await self._check_team(fields.get("team_id"))
        record = build_key(raw, fields, self.gw.clock.now(), duration)
        if await self.store.get_key(record.token_hash) is not None:
            raise _bad("key: a key with this value already exists.", "key")
        await self.store.insert_key(record)
        await self.gw.changed(record.token_hash)
        return {"key": raw, **self.key_view(record), "expires": _iso(record.expires_at)}

    async def key_info(self, body: Body, query: dict) -> dict:
        key = await self._find_key(query.get("key") or body.string("key"))
        return {"key": key.token_hash, "info": self.key_view(key)}

    async def key_update(self, body: Body, query: dict) -> dict:
        key = await self._find_key(body.string("key"))
        changes = _read_fields(body, _KEY_READERS)
        await self._check_team(changes.get("team_id"))
        now = self.gw.clock.now()
        if body.has("duration"):
            duration = body.duration("duration")
            changes["expires_at"] = now + parse_duration(duration) if duration else None
        if "budget_duration" in changes:
            period = period_seconds(changes["budget_duration"])
            changes["budget_reset_at"] = now + period if period else None
        updated = await self.store.update_key(key.token_hash, changes)
        self._budget_changed(("key", key.token_hash), changes)
        await self.gw.changed(key.token_hash)
        return self.key_view(updated)

    async def key_delete(self, body: Body, query: dict) -> dict:
        refs = body.strings("keys") or []
        aliases = body.strings("key_aliases") or []
        if not refs and not aliases:
            raise _bad("keys: give a list of keys (or their hashes) to delete.", "keys")
        hashes = [r if _HASH.match(r) else hash_key(r) for r in refs]
        for alias in aliases:
            found = await self.store.find_key_by_alias(alias)
            if found is not None:
                hashes.append(found.token_hash)
        deleted = await self.store.delete_keys(hashes)
        if not deleted:
            raise _not_found("None of the given keys exist.")
        for token_hash in deleted:
            self.gw.ledger.forget(("key", token_hash))
        await self.gw.changed()
        return {"deleted_keys": deleted}

    async def key_list(self, body: Body, query: dict) -> dict:
        page = _positive(query.get("page"), 1, "page")
        size = min(_positive(query.get("size"), 100, "size"), 1000)
        keys = await self.store.list_keys(
            user_id=query.get("user_id"), team_id=query.get("team_id"), limit=size, offset=(page - 1) * size
        )
        total = await self.store.count_keys()
        full = query.get("return_full_object", "false").lower() == "true"
        return {
            "keys": [self.key_view(k) for k in keys] if full else [k.token_hash for k in keys],
            "total_count": total,
            "current_page": page,
            "total_pages": max(1, math.ceil(total / size)),
        }

    async def key_regenerate(self, body: Body, query: dict) -> dict:
        key = await self._find_key(body.string("key"))
        changes = _read_fields(body, _KEY_READERS)
        raw = body.string("new_key") or generate_key()
        if not raw.startswith(KEY_PREFIX) and upstream_credential_kind(raw) is not None:
            raise _bad("new_key: this looks like an Anthropic credential.", "new_key")
        new_hash = hash_key(raw)
        await self.gw.writer.flush()  # spend and log rows still in memory are written under the old hash first
        updated = await self.store.rekey(key.token_hash, new_hash, mask(raw), changes)
        if updated is None:
            raise _not_found("Key not found.")
        self.gw.ledger.rename(("key", key.token_hash), ("key", new_hash))
        self._budget_changed(("key", new_hash), changes)
        await self.gw.changed(key.token_hash)
        return {"key": raw, **self.key_view(updated)}

    async def _set_blocked(self, body: Body, blocked: bool) -> dict:
        key = await self._find_key(body.string("key"))
        updated = await self.store.update_key(key.token_hash, {"blocked": blocked})
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
            raise _bad(f"user_id: user {user_id!r} already exists.", "user_id")
        now = self.gw.clock.now()
        teams = list(dict.fromkeys(body.strings("teams") or []))
        for team_id in teams:  # before anything is written: a bad team id leaves no half-made user
            await self._check_team(team_id)
        record = UserRecord(user_id=user_id, **fields)
        period = period_seconds(record.budget_duration)
        record.budget_reset_at = now + period if period else None
        await self.store.insert_user(record)
        for team_id in teams:
            await self.store.add_team_member(team_id, user_id)
        result = {**self.user_view(record), "teams": teams}
        if body.boolean("auto_create_key") is not False:  # LiteLLM creates a key for a new user by default
            raw = generate_key()
            key = KeyRecord(token_hash=hash_key(raw), key_name=mask(raw), user_id=user_id, models=list(record.models))
            await self.store.insert_key(key)
            result.update(key=raw, token=key.token_hash)
        await self.gw.changed()
        return result

    async def _ensure_user(self, user_id: str) -> None:
        """A team member LiteLLM-style: adding an unknown user to a team creates the user (no limits, no key)."""
        if await self.store.get_user(user_id) is None:
            try:
                await self.store.insert_user(UserRecord(user_id=user_id))
            except IntegrityViolation:
                pass  # created meanwhile

    async def _find_user(self, user_id: str | None) -> UserRecord:
        if not user_id:
            raise _bad("user_id: required.", "user_id")
        user = await self.store.get_user(user_id)
        if user is None:
            raise _not_found(f"User {user_id!r} not found.")
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
        changes = _read_fields(body, _USER_READERS)
        if "budget_duration" in changes:
            period = period_seconds(changes["budget_duration"])
            changes["budget_reset_at"] = self.gw.clock.now() + period if period else None
        updated = await self.store.update_user(user.user_id, changes)
        self._budget_changed(("user", user.user_id), changes)
        await self.gw.changed()
        return self.user_view(updated)

    async def user_delete(self, body: Body, query: dict) -> dict:
        ids = body.strings("user_ids")
        if not ids:
            raise _bad("user_ids: give a list of user ids to delete.", "user_ids")
        deleted = await self.store.delete_users(ids)
        if not deleted:
            raise _not_found("None of the given users exist.")
        for user_id in deleted:
            self.gw.ledger.forget(("user", user_id))
        await self.gw.changed()
        return {"deleted_users": deleted}

    async def user_list(self, body: Body, query: dict) -> dict:
        page = _positive(query.get("page"), 1, "page")
        size = min(_positive(query.get("page_size"), 100, "page_size"), 1000)
        users = await self.store.list_users(limit=size, offset=(page - 1) * size)
        return {"users": [self.user_view(u) for u in users], "page": page, "page_size": size}

    # --- teams -------------------------------------------------------------------------------

    async def team_new(self, body: Body, query: dict) -> dict:
        fields = _read_fields(body, _TEAM_READERS)
        team_id = body.string("team_id") or str(uuid.uuid4())
        if await self.store.get_team(team_id) is not None:
            raise _bad(f"team_id: team {team_id!r} already exists.", "team_id")
        record = TeamRecord(team_id=team_id, **fields)
        period = period_seconds(record.budget_duration)
        record.budget_reset_at = self.gw.clock.now() + period if period else None
        record.members = _member_ids(body)
        await self.store.insert_team(record)
        for user_id in record.members:
            await self._ensure_user(user_id)
        await self.gw.changed()
        return self.team_view(record)

    async def _find_team(self, team_id: str | None) -> TeamRecord:
        if not team_id:
            raise _bad("team_id: required.", "team_id")
        team = await self.store.get_team(team_id)
        if team is None:
            raise _not_found(f"Team {team_id!r} not found.")
        return team

    async def team_info(self, body: Body, query: dict) -> dict:
        team = await self._find_team(query.get("team_id") or body.string("team_id"))
        keys = await self.store.list_keys(team_id=team.team_id, limit=1000)
        return {"team_id": team.team_id, "team_info": self.team_view(team), "keys": [self.key_view(k) for k in keys]}

    async def team_update(self, body: Body, query: dict) -> dict:
        team = await self._find_team(body.string("team_id"))
        changes = _read_fields(body, _TEAM_READERS)
        if "budget_duration" in changes:
            period = period_seconds(changes["budget_duration"])
            changes["budget_reset_at"] = self.gw.clock.now() + period if period else None
        updated = await self.store.update_team(team.team_id, changes)
        self._budget_changed(("team", team.team_id), changes)
        await self.gw.changed()
        return self.team_view(updated)

    async def team_delete(self, body: Body, query: dict) -> dict:
        ids = body.strings("team_ids")
        if not ids:
            raise _bad("team_ids: give a list of team ids to delete.", "team_ids")
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
        team = await self._find_team(body.string("team_id"))
        members = body.data.get("member")
        entries = members if isinstance(members, list) else [members]
        if not entries or not all(isinstance(m, dict) and isinstance(m.get("user_id"), str) for m in entries):
            raise _bad('member: expected {"user_id": "...", "role": "user"} or a list of them.', "member")
        for member in entries:
            role = member.get("role") if isinstance(member.get("role"), str) else "user"
            await self._ensure_user(member["user_id"])
            await self.store.add_team_member(team.team_id, member["user_id"], role)
        await self.gw.changed()
        return self.team_view(await self._find_team(team.team_id))

    async def team_member_delete(self, body: Body, query: dict) -> dict:
        team = await self._find_team(body.string("team_id"))
        user_id = body.string("user_id")
        if not user_id:
            raise _bad("user_id: required.", "user_id")
        if not await self.store.remove_team_member(team.team_id, user_id):
            raise _not_found(f"User {user_id!r} is not a member of team {team.team_id!r}.")
        await self.gw.changed()
        return self.team_view(await self._find_team(team.team_id))

    async def _team_blocked(self, body: Body, blocked: bool) -> dict:
        team = await self._find_team(body.string("team_id"))
        updated = await self.store.update_team(team.team_id, {"blocked": blocked})
        await self.gw.changed()
        return self.team_view(updated)

    async def team_block(self, body: Body, query: dict) -> dict:
        return await self._team_blocked(body, True)

    async def team_unblock(self, body: Body, query: dict) -> dict:
        return await self._team_blocked(body, False)

    # --- spend -------------------------------------------------------------------------------

    async def spend_logs(self, body: Body, query: dict) -> list:
        await self.gw.writer.flush()  # include what is still in memory
        key = query.get("api_key") or query.get("key")
        rows = await self.store.spend_logs(
            token_hash=(key if _HASH.match(key) else hash_key(key)) if key else None,
            user_id=query.get("user_id"),
            team_id=query.get("team_id"),
            model=query.get("model"),
            start=_time_param(query.get("start_date"), "start_date"),
            end=_time_param(query.get("end_date"), "end_date"),
            request_id=query.get("request_id"),
            limit=min(_positive(query.get("limit"), 1000, "limit"), 100_000),
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

    async def health(self, body: Body, query: dict) -> dict:
        return {"deployments": self.gw.router.health(self.gw.clock.now())}

    async def metrics(self, body: Body, query: dict) -> bytes:
        return self.gw.metrics.render()

    async def test_clock(self, body: Body, query: dict) -> dict:
        if not self.gw.test_clock:
            raise _not_found("No route.")
        seconds = body.number("advance") or 0.0
        return {"now": self.gw.clock.advance(seconds)}


def _member_ids(body: Body) -> list[str]:
    ids = list(body.strings("members") or [])
    roles = body.data.get("members_with_roles")
    if roles is not None:
        if not isinstance(roles, list) or not all(isinstance(m, dict) and isinstance(m.get("user_id"), str) for m in roles):
            raise _bad('members_with_roles: expected a list of {"user_id": "...", "role": "..."}.', "members_with_roles")
        ids.extend(m["user_id"] for m in roles)
    return list(dict.fromkeys(ids))


def _positive(raw: str | None, default: int, name: str) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(f"{name}: expected a positive integer.", name) from None
    if value < 1:
        raise _bad(f"{name}: expected a positive integer.", name)
    return value


def _time_param(raw: str | None, name: str) -> float | None:
    """Unix seconds, or an ISO date / date-time (UTC)."""
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    from datetime import datetime, timezone

    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"{name}: expected Unix seconds or an ISO date such as 2026-11-01.", name) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _log_view(row: SpendLogRow) -> dict[str, Any]:
    return {
        "request_id": row.request_id,
        "startTime": _iso(row.ts),
        "ts": row.ts,
        "api_key": row.token_hash,
        "key_alias": row.key_alias,
        "user": row.user_id,
        "team_id": row.team_id,
        "model": row.model,
        "model_group": row.model_group,
        "deployment": row.deployment,
        "provider": row.provider,
        "prompt_tokens": row.input_tokens + row.cache_read_tokens + row.cache_write_tokens,
        "completion_tokens": row.output_tokens,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cache_read_tokens": row.cache_read_tokens,
        "cache_write_tokens": row.cache_write_tokens,
        "spend": row.cost,
        "status": row.status,
        "latency_ms": row.latency_ms,
        "stream": row.stream,
        "attempts": row.attempts,
        "request": row.request_content,
        "response": row.response_content,
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
        "/key/info": h("GET", admin.key_info),
        "/key/update": h("POST", admin.key_update),
        "/key/delete": h("POST", admin.key_delete),
        "/key/list": h("GET", admin.key_list),
        "/key/regenerate": h("POST", admin.key_regenerate),
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
        "/health": h("GET", admin.health),
        "/health/liveliness": h("GET", admin.liveliness, public=True),
        "/health/liveness": h("GET", admin.liveliness, public=True),
        "/health/readiness": h("GET", admin.readiness, public=True),
        "/metrics": h("GET", admin.metrics, public=True),
        "/keystile/test/clock": h("POST", admin.test_clock),
    }
    return table
