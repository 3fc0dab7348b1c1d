"""``GET /v1/models`` and ``/v1/models/{id}``: the models a key may use, in one shape both clients read.

Each entry carries Anthropic's fields (``type``, ``display_name``, ``created_at``) and
OpenAI's (``object``, ``created``, ``owned_by``); the list has both ``object: "list"`` and
Anthropic's paging fields. Claude Code's model discovery and OpenAI clients both accept it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

from keystile.apiformat import ApiFormat
from keystile.auth import Identity
from keystile.credentials import resolve_credentials
from keystile.errors import ErrorKind, GatewayError
from keystile.limits.authorize import model_allowed
from keystile.formats.checks import quote
from keystile.server.http import Receive, Scope, Send, header_value, send_error, send_json
from keystile.server.inference import query_key_of
from keystile.translate.gemini.models import gemini_model, gemini_model_list

if TYPE_CHECKING:
    from keystile.server.app import Gateway

LIST_PATHS = ("/v1/models", "/models", "/v1beta/models")
"""``GET`` lists the models; ``<path>/{model}`` is one of them."""

# A fixed creation time: the gateway cannot know when an upstream model was released.
_CREATED = 1735689600  # 2025-01-01T00:00:00Z
_CREATED_AT = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_CREATED))


def model_entry(name: str) -> dict:
    return {
        "id": name,
        "type": "model",
        "display_name": name,
        "created_at": _CREATED_AT,
        "object": "model",
        "created": _CREATED,
        "owned_by": "keystile",
    }


def may_use(identity: Identity, name: str) -> bool:
    if identity.is_master:
        return True
    records = (identity.key, identity.team, identity.user)
    return all(model_allowed(r.models, name) for r in records if r is not None and r.models)


def visible_models(gateway: "Gateway", identity: Identity) -> list[str]:
    """Served names (configured or added at run time) the identity may use; pattern groups (``claude-*``) are not listed."""
    return [n for n in gateway.router.groups if "*" not in n and may_use(identity, n)]


async def models(gateway: "Gateway", scope: Scope, receive: Receive, send: Send, path: str) -> None:
    gemini = _asks_for_gemini(scope, path)
    if gemini:
        fmt = ApiFormat.GEMINI
    else:
        fmt = ApiFormat.ANTHROPIC if header_value(scope["headers"], b"anthropic-version") else ApiFormat.OPENAI
    if scope["method"] != "GET":
        await send_error(send, fmt, GatewayError(ErrorKind.METHOD_NOT_ALLOWED, f"{path} accepts GET."))
        return
    query_key = query_key_of(scope.get("query_string", b"")) if gemini else None
    try:
        identity = await gateway.authenticator.authenticate(resolve_credentials(scope["headers"], query_key))
    except GatewayError as error:
        await send_error(send, fmt, error)
        return
    names = visible_models(gateway, identity)
    if gemini:
        await _gemini_models(gateway, identity, send, path, names)
        return
    prefix = "/v1/models/" if path.startswith("/v1/") else "/models/"
    if path.startswith(prefix):
        wanted = unquote(path[len(prefix):])
        if wanted not in names and not _served_by_pattern(gateway, identity, wanted):
            await send_error(send, fmt, GatewayError(ErrorKind.MODEL_NOT_FOUND, f"Model {wanted!r} is not available to this key."))
            return
        await send_json(send, 200, model_entry(wanted))
        return
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    after = query.get("after_id", [None])[0]
    if after in names:
        names = names[names.index(after) + 1:]
    limit = _limit(query.get("limit", [None])[0], len(names))
    page, more = names[:limit], len(names) > limit
    await send_json(
        send,
        200,
        {
            "object": "list",
            "data": [model_entry(n) for n in page],
            "has_more": more,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        },
    )


def _asks_for_gemini(scope: Scope, path: str) -> bool:
    """``/v1beta/models`` is Gemini's; ``/v1/models`` is shared with OpenAI and Anthropic, and is
    Gemini's when a Google client asks (google-genai uses v1, with its key in ``x-goog-api-key``)."""
    if path.startswith("/v1beta/"):
        return True
    headers = scope["headers"]
    return (
        header_value(headers, b"x-goog-api-key") is not None
        or header_value(headers, b"x-goog-api-client") is not None
        or b"key=" in scope.get("query_string", b"")
    ) and header_value(headers, b"anthropic-version") is None


async def _gemini_models(gateway: "Gateway", identity: Identity, send: Send, path: str, names: list[str]) -> None:
    """``GET /v1beta/models`` (Google's Model list) and ``/v1beta/models/{name}``."""
    wanted = unquote(path.split("/models", 1)[1].lstrip("/")).removeprefix("models/")
    if not wanted:
        await send_json(send, 200, gemini_model_list(names))
        return
    if wanted not in names and not _served_by_pattern(gateway, identity, wanted):
        error = GatewayError(ErrorKind.MODEL_NOT_FOUND, f"Model {quote(wanted)} is not available to this key.")
        await send_error(send, ApiFormat.GEMINI, error)
        return
    await send_json(send, 200, gemini_model(wanted))


def _served_by_pattern(gateway: "Gateway", identity: Identity, name: str) -> bool:
    """``GET /v1/models/claude-opus-4-8`` answers when a pattern group would serve that name."""
    return gateway.router.group(name) is not None and may_use(identity, name)


def _limit(raw: str | None, default: int) -> int:
    if raw is None:
        return max(default, 1)
    try:
        return max(1, min(int(raw), 1000))
    except ValueError:
        return max(default, 1)


async def bedrock_inference_profiles(gateway: "Gateway", scope: Scope, receive: Receive, send: Send) -> None:
    """``GET /bedrock/inference-profiles``: Bedrock's ListInferenceProfiles, for Claude Code's Bedrock mode.

    Claude Code asks it first to pick the ids of its default models; this answers with the
    Bedrock-style names (``us.anthropic.claude-…``) the key may use, so it picks ids keystile
    serves. A caller without a key (Claude Code's AWS client does not send
    ``ANTHROPIC_CUSTOM_HEADERS``) gets AWS's 403, and Claude Code falls back to its built-in ids.
    """
    if scope["method"] != "GET":
        await send_error(send, ApiFormat.BEDROCK, GatewayError(ErrorKind.METHOD_NOT_ALLOWED, "inference-profiles accepts GET."))
        return
    try:
        identity = await gateway.authenticator.authenticate(resolve_credentials(scope["headers"]))
    except GatewayError as error:
        error = GatewayError(ErrorKind.PERMISSION, error.message) if error.status == 401 else error  # AWS answers 403
        await send_error(send, ApiFormat.BEDROCK, error)
        return
    names = [name for name in visible_models(gateway, identity) if ".anthropic." in f".{name}"]
    await send_json(send, 200, {"inferenceProfileSummaries": [_inference_profile(name) for name in names]})


def _inference_profile(name: str) -> dict:
    return {
        "inferenceProfileName": name,
        "inferenceProfileId": name,
        "inferenceProfileArn": f"arn:aws:bedrock:us-east-1::inference-profile/{name}",
        "description": f"{name}, served by keystile",
        "models": [],
        "status": "ACTIVE",
        "type": "SYSTEM_DEFINED",
        "createdAt": _CREATED_AT,
        "updatedAt": _CREATED_AT,
    }
