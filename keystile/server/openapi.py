"""The OpenAPI 3.1 document of keystile's whole HTTP API (``GET /openapi.json``) and its reader (``GET /docs``).

Inference routes are described at their top level (the fields keystile reads; the rest passes
through to the upstream), admin routes with every field they take and answer. The document is
built once from the tables below; ``tests/integration/test_openapi.py`` checks it against the
routes keystile actually answers, both ways, and sends schema-generated requests to every
admin route. ``/docs`` is a small page shipped in the package that renders this document
(no CDN: it works offline).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson

from keystile import __version__
from keystile.server.http import Receive, Scope, Send, send_bytes

if TYPE_CHECKING:
    from keystile.server.admin import Admin, Handler

INT64 = 9223372036854775807

# --- schema helpers -------------------------------------------------------------------------------


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Any], required: tuple[str, ...] = (), *, extra: bool = True, description: str | None = None) -> dict:
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    if not extra:
        out["additionalProperties"] = False
    if description:
        out["description"] = description
    return out


def nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


STR = {"type": "string"}
NSTR = nullable(STR)
NUM = {"type": "number"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
STRS = {"type": "array", "items": STR}
ANY_OBJ = {"type": "object"}
DURATION = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d|w|mo)?$", "description": "a duration such as 30s, 1h, 30d"}
MONEY = {"type": "number", "minimum": 0, "maximum": 1e15}
LIMIT = {"type": "integer", "minimum": 1, "maximum": INT64}
MODEL_LIMITS = {"type": "object", "additionalProperties": LIMIT}
DATE = {"type": "string", "description": "Unix seconds, or an ISO date / date-time (UTC); a bare date as an end includes that day"}

LIMIT_FIELDS = {
    "models": {**STRS, "description": "model names (patterns like claude-* allowed); empty: all"},
    "max_budget": {**MONEY, "description": "USD"},
    "soft_budget": {**MONEY, "description": "USD; past it responses carry x-keystile-budget-warning"},
    "budget_duration": {**DURATION, "description": "budget period, e.g. 30d (spend resets each period)"},
    "rpm_limit": LIMIT,
    "tpm_limit": LIMIT,
    "max_parallel_requests": LIMIT,
    "metadata": ANY_OBJ,
}
KEY_FIELDS = {
    **LIMIT_FIELDS,
    "key_alias": STR,
    "user_id": STR,
    "team_id": STR,
    "model_rpm_limit": MODEL_LIMITS,
    "model_tpm_limit": MODEL_LIMITS,
    "blocked": BOOL,
    "spend": MONEY,
    "duration": {**DURATION, "description": "the key expires this long from now"},
}
USER_FIELDS = {**LIMIT_FIELDS, "user_alias": STR, "user_email": STR, "spend": MONEY}
TEAM_FIELDS = {**LIMIT_FIELDS, "team_alias": STR, "blocked": BOOL, "spend": MONEY}

VIEW_LIMITS = {
    "models": STRS,
    "spend": NUM,
    "max_budget": nullable(NUM),
    "soft_budget": nullable(NUM),
    "remaining_budget": nullable(NUM),
    "budget_duration": NSTR,
    "budget_reset_at": NSTR,
    "rpm_limit": nullable(INT),
    "tpm_limit": nullable(INT),
    "max_parallel_requests": nullable(INT),
    "metadata": ANY_OBJ,
    "created_at": NSTR,
    "updated_at": NSTR,
}

SCHEMAS: dict[str, Any] = {
    "Error": obj(
        {"error": obj({"message": STR, "type": STR, "param": NSTR, "code": nullable({"type": ["string", "integer"]})})},
        ("error",),
        description="OpenAI-shaped error (admin routes, Chat Completions); Anthropic routes answer {type: error, error: {type, message}}",
    ),
    "KeyRequest": obj({**KEY_FIELDS, "key": {"type": "string", "minLength": 8, "description": "a custom key; default: generated"}}),
    "KeyUpdate": obj({"key": {**STR, "description": "the key or its SHA-256 hash"}, **KEY_FIELDS}, ("key",)),
    "KeyRef": obj({"key": {**STR, "description": "the key or its SHA-256 hash"}}, ("key",)),
    "KeyRegenerate": obj({"key": STR, "new_key": STR, **KEY_FIELDS}, ("key",)),
    "KeyDelete": obj({"keys": STRS, "key_aliases": STRS}),
    "Key": obj(
        {
            "token": {**STR, "description": "SHA-256 of the key: how keystile stores it"},
            "key_name": {**STR, "description": "the key, masked"},
            "key_alias": NSTR,
            **VIEW_LIMITS,
            "model_rpm_limit": ANY_OBJ,
            "model_tpm_limit": ANY_OBJ,
            "expires": NSTR,
            "blocked": BOOL,
            "user_id": NSTR,
            "team_id": NSTR,
        }
    ),
    "NewKey": {"allOf": [ref("Key"), obj({"key": {**STR, "description": "the raw key, shown only in this answer"}}, ("key",))]},
    "KeyInfo": obj({"key": STR, "info": ref("Key")}, ("key", "info")),
    "KeyList": obj({"keys": {"type": "array", "items": {"anyOf": [STR, ref("Key")]}}, "total_count": INT, "current_page": INT, "total_pages": INT}),
    "UserRequest": obj({"user_id": STR, "teams": STRS, "auto_create_key": BOOL, **USER_FIELDS}),
    "UserUpdate": obj({"user_id": STR, **USER_FIELDS}, ("user_id",)),
    "User": obj({"user_id": STR, "user_alias": NSTR, "user_email": NSTR, **VIEW_LIMITS}),
    "UserInfo": obj({"user_id": STR, "user_info": ref("User"), "keys": {"type": "array", "items": ref("Key")}, "teams": {"type": "array", "items": ref("Team")}}),
    "TeamRequest": obj(
        {"team_id": STR, "members": STRS, "members_with_roles": {"type": "array", "items": obj({"user_id": STR, "role": STR}, ("user_id",))}, **TEAM_FIELDS}
    ),
    "TeamUpdate": obj({"team_id": STR, **TEAM_FIELDS}, ("team_id",)),
    "TeamRef": obj({"team_id": STR}, ("team_id",)),
    "Team": obj({"team_id": STR, "team_alias": NSTR, "blocked": BOOL, "members": STRS, "members_with_roles": {"type": "array", "items": ANY_OBJ}, **VIEW_LIMITS}),
    "TeamInfo": obj({"team_id": STR, "team_info": ref("Team"), "keys": {"type": "array", "items": ref("Key")}}),
    "MemberAdd": obj({"team_id": STR, "member": {"anyOf": [obj({"user_id": STR, "role": STR}, ("user_id",)), {"type": "array", "items": obj({"user_id": STR, "role": STR}, ("user_id",))}]}}, ("team_id", "member")),
    "MemberDelete": obj({"team_id": STR, "user_id": STR}, ("team_id", "user_id")),
    "SpendLog": obj(
        {
            "request_id": STR, "call_type": STR, "startTime": STR, "endTime": STR, "ts": NUM, "api_key": NSTR, "key_alias": NSTR,
            "user": NSTR, "team_id": NSTR, "model": STR, "model_group": NSTR, "deployment": NSTR, "provider": NSTR,
            "prompt_tokens": INT, "completion_tokens": INT, "total_tokens": INT, "input_tokens": INT, "output_tokens": INT,
            "cache_read_tokens": INT, "cache_write_tokens": INT, "spend": NUM, "status": INT, "latency_ms": NUM, "stream": BOOL,
            "attempts": INT, "request": NSTR, "response": NSTR, "request_tags": STRS, "metadata": ANY_OBJ,
        }
    ),
    "ModelNew": obj(
        {
            "model_name": {**STR, "minLength": 1, "description": "the public name clients send as model"},
            "litellm_params": obj(
                {
                    "model": {**STR, "description": "provider/model, e.g. openai/gpt-4o or anthropic/claude-sonnet-4-5"},
                    "api_base": STR, "api_key": {**STR, "description": "stored in the database as given; prefer os.environ/NAME"},
                    "api_version": STR, "rpm": LIMIT, "tpm": LIMIT, "weight": {"type": "number", "minimum": 0},
                    "timeout": NUM, "stream_timeout": NUM, "max_retries": {"type": "integer", "minimum": 0, "maximum": 100},
                    "input_cost_per_token": {"type": "number", "minimum": 0}, "output_cost_per_token": {"type": "number", "minimum": 0},
                },
                ("model",),
            ),
            "model_info": obj({"id": STR, "base_model": STR}),
        },
        ("model_name", "litellm_params"),
    ),
    "ModelDelete": obj({"id": STR}, ("id",)),
    "ModelInfo": obj({"data": {"type": "array", "items": obj({"model_name": STR, "litellm_params": ANY_OBJ, "model_info": ANY_OBJ})}}),
    "ModelGroupInfo": obj({"data": {"type": "array", "items": obj({"model_group": STR, "providers": STRS, "mode": STR, "input_cost_per_token": nullable(NUM), "output_cost_per_token": nullable(NUM), "tpm": nullable(INT), "rpm": nullable(INT)})}}),
    "Health": obj(
        {
            "healthy_endpoints": {"type": "array", "items": ANY_OBJ},
            "unhealthy_endpoints": {"type": "array", "items": ANY_OBJ},
            "healthy_count": INT,
            "unhealthy_count": INT,
            "deployments": {"type": "array", "items": ANY_OBJ},
        }
    ),
    "SpendCalculate": obj({"model": STR, "messages": {"type": "array", "items": ANY_OBJ}, "completion_response": ANY_OBJ}),
    "DailyActivity": obj({"results": {"type": "array", "items": obj({"date": STR, "metrics": ANY_OBJ, "breakdown": ANY_OBJ})}, "metadata": ANY_OBJ}),
    "Activity": obj({"start": NUM, "end": NUM, "bucket_seconds": NUM, "series": {"type": "array", "items": ANY_OBJ}, "totals": ANY_OBJ, "top": ANY_OBJ}),
    # --- inference, at the top level ---
    "MessagesRequest": obj(
        {
            "model": STR, "max_tokens": INT, "messages": {"type": "array", "items": obj({"role": STR, "content": {"anyOf": [STR, {"type": "array"}]}})},
            "system": {"anyOf": [STR, {"type": "array"}]}, "stream": BOOL, "tools": {"type": "array"}, "tool_choice": ANY_OBJ,
            "temperature": NUM, "thinking": ANY_OBJ, "metadata": obj({"user_id": STR, "tags": STRS}),
        },
        ("model", "max_tokens", "messages"),
        description="Anthropic Messages; fields not listed are forwarded to Anthropic upstreams and translated where another format has them",
    ),
    "MessagesResponse": obj({"id": STR, "type": {"const": "message"}, "role": STR, "model": STR, "content": {"type": "array"}, "stop_reason": NSTR, "usage": ANY_OBJ}),
    "CountTokensResponse": obj({"input_tokens": INT}, ("input_tokens",)),
    "ChatRequest": obj(
        {
            "model": STR, "messages": {"type": "array", "items": obj({"role": STR, "content": {"anyOf": [STR, {"type": "array"}, {"type": "null"}]}})},
            "stream": BOOL, "stream_options": ANY_OBJ, "max_tokens": INT, "max_completion_tokens": INT, "tools": {"type": "array"},
            "temperature": NUM, "metadata": obj({"tags": STRS}),
        },
        ("model", "messages"),
        description="OpenAI Chat Completions",
    ),
    "ChatResponse": obj({"id": STR, "object": {"const": "chat.completion"}, "created": INT, "model": STR, "choices": {"type": "array"}, "usage": ANY_OBJ}),
    "ResponsesRequest": obj({"model": STR, "input": {"anyOf": [STR, {"type": "array"}]}, "instructions": STR, "stream": BOOL, "tools": {"type": "array"}, "max_output_tokens": INT}, ("model",), description="OpenAI Responses"),
    "ResponsesResponse": obj({"id": STR, "object": {"const": "response"}, "status": STR, "model": STR, "output": {"type": "array"}, "usage": ANY_OBJ}),
    "EmbeddingsRequest": obj({"model": STR, "input": {"anyOf": [STR, {"type": "array"}]}}, ("model", "input")),
    "EmbeddingsResponse": obj({"object": {"const": "list"}, "data": {"type": "array"}, "model": STR, "usage": ANY_OBJ}),
    "GeminiRequest": obj({"contents": {"type": "array"}, "systemInstruction": ANY_OBJ, "generationConfig": ANY_OBJ, "tools": {"type": "array"}}, ("contents",), description="Google Gemini generateContent"),
    "GeminiResponse": obj({"candidates": {"type": "array"}, "usageMetadata": ANY_OBJ, "modelVersion": STR}),
    "Model": obj({"id": STR, "type": STR, "display_name": STR, "created_at": STR, "object": STR, "created": INT, "owned_by": STR}),
    "ModelList": obj({"object": STR, "data": {"type": "array", "items": ref("Model")}, "has_more": BOOL, "first_id": NSTR, "last_id": NSTR}),
}

# --- operation helpers ----------------------------------------------------------------------------

ADMIN = [{"masterKey": []}, {"adminSession": []}]
ANY_KEY = [{"masterKey": []}, {"virtualKey": []}, {"apiKeyHeader": []}, {"adminSession": []}]
INFERENCE = [{"virtualKey": []}, {"apiKeyHeader": []}, {"keystileKey": []}]
PUBLIC: list = []


def q(name: str, description: str = "", schema: dict | None = None, required: bool = False) -> dict:
    out = {"name": name, "in": "query", "required": required, "schema": schema or STR}
    if description:
        out["description"] = description
    return out


def path_param(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": STR, "description": description}


def json_body(schema: dict, required: bool = True) -> dict:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def answers(schema: dict | None, description: str = "OK", *, errors: tuple[int, ...] = (400, 401, 403), media: str = "application/json") -> dict:
    out: dict[str, Any] = {"200": {"description": description}}
    if schema is not None:
        out["200"]["content"] = {media: {"schema": schema}}
    for status in errors:
        out[str(status)] = {"description": _ERROR_TEXT.get(status, "error"), "content": {"application/json": {"schema": ref("Error")}}}
    return out


_ERROR_TEXT = {
    400: "bad input: the message names the field", 401: "no or invalid key", 403: "not allowed (a virtual key on an admin route; CSRF)",
    404: "not found", 429: "rate limited", 502: "upstream failed", 503: "database unreachable",
}


def op(summary: str, tag: str, *, security: list = ADMIN, params: list | None = None, body: dict | None = None,
       response: dict | None = None, description: str | None = None, errors: tuple[int, ...] = (400, 401, 403), media: str = "application/json") -> dict:
    out: dict[str, Any] = {"summary": summary, "tags": [tag], "security": security, "responses": answers(response, errors=errors, media=media)}
    if description:
        out["description"] = description
    if params:
        out["parameters"] = params
    if body is not None:
        out["requestBody"] = body
    return out


KEY_Q = q("key", "the key, or its SHA-256 hash")
RANGE = [q("start_date", "start of the range", DATE), q("end_date", "end of the range", DATE)]
PAGE = [q("page", "page number", {"type": "integer", "minimum": 1, "maximum": 1_000_000})]
STREAM_TEXT = "With stream: true the answer is a text/event-stream in the same format."


def _inference() -> dict[str, dict]:
    def gen(summary: str, request: str, response: str, description: str = STREAM_TEXT) -> dict:
        return {"post": op(summary, "inference", security=INFERENCE, body=json_body(ref(request)), response=ref(response),
                           description=description, errors=(400, 401, 403, 404, 429, 502))}

    gemini = "The model is named in the path; also served under /v1/, /v1beta1/ and Vertex's publishers/google/ paths, behind any prefix. Keys also in x-goog-api-key or ?key=."
    azure = "Azure OpenAI clients: the deployment in the path is the model; the key in api-key."
    return {
        "/v1/messages": gen("Anthropic Messages", "MessagesRequest", "MessagesResponse"),
        "/v1/messages/count_tokens": gen("Count input tokens (Anthropic)", "MessagesRequest", "CountTokensResponse", "Passed to Anthropic; a documented local estimate for other upstreams."),
        "/v1/chat/completions": gen("OpenAI Chat Completions", "ChatRequest", "ChatResponse"),
        "/chat/completions": gen("OpenAI Chat Completions (no /v1)", "ChatRequest", "ChatResponse"),
        "/v1/responses": gen("OpenAI Responses", "ResponsesRequest", "ResponsesResponse"),
        "/responses": gen("OpenAI Responses (no /v1)", "ResponsesRequest", "ResponsesResponse"),
        "/v1/embeddings": gen("OpenAI Embeddings", "EmbeddingsRequest", "EmbeddingsResponse", "OpenAI-type upstreams only."),
        "/embeddings": gen("OpenAI Embeddings (no /v1)", "EmbeddingsRequest", "EmbeddingsResponse", "OpenAI-type upstreams only."),
        "/openai/deployments/{deployment}/chat/completions": {
            "post": {**gen("Azure OpenAI Chat Completions", "ChatRequest", "ChatResponse", azure)["post"],
                     "parameters": [path_param("deployment", "the model name"), q("api-version", "accepted and ignored")]}
        },
        "/openai/deployments/{deployment}/embeddings": {
            "post": {**gen("Azure OpenAI Embeddings", "EmbeddingsRequest", "EmbeddingsResponse", azure)["post"],
                     "parameters": [path_param("deployment", "the model name"), q("api-version", "accepted and ignored")]}
        },
        "/v1beta/models/{model}:generateContent": {"post": {**gen("Gemini generateContent", "GeminiRequest", "GeminiResponse", gemini)["post"], "parameters": [path_param("model", "the model name")]}},
        "/v1beta/models/{model}:streamGenerateContent": {"post": {**gen("Gemini streamGenerateContent (SSE with ?alt=sse)", "GeminiRequest", "GeminiResponse", gemini)["post"], "parameters": [path_param("model", "the model name"), q("alt", "sse")]}},
        "/v1beta/models/{model}:countTokens": {"post": {**gen("Gemini countTokens", "GeminiRequest", "CountTokensResponse", gemini)["post"], "parameters": [path_param("model", "the model name")]}},
    }


def _catalog() -> dict[str, dict]:
    listing = op("Models this key may use", "models", security=INFERENCE, params=[q("limit", "page size", {"type": "integer", "minimum": 1, "maximum": 1000}), q("after_id", "page after this id")], response=ref("ModelList"), errors=(401,),
                 description="One shape both Anthropic and OpenAI clients read; Gemini clients (x-goog-api-key) get Google's Model list.")
    one = op("One model", "models", security=INFERENCE, params=[path_param("model", "the model name")], response=ref("Model"), errors=(401, 404))
    gemini_list = op("Models this key may use (Gemini)", "models", security=INFERENCE, response=ANY_OBJ, errors=(401,))
    gemini_one = op("One model (Gemini)", "models", security=INFERENCE, params=[path_param("model", "the model name")], response=ANY_OBJ, errors=(401, 404))
    return {
        "/v1/models": {"get": listing}, "/models": {"get": listing},
        "/v1/models/{model}": {"get": one}, "/models/{model}": {"get": one},
        "/v1beta/models": {"get": gemini_list}, "/v1beta/models/{model}": {"get": gemini_one},
    }


def _admin() -> dict[str, dict]:
    K, U, T, S, M, O = "keys", "users", "teams", "spend", "models and health", "operations"
    key_list_params = [*PAGE, q("size", "page size", {"type": "integer", "minimum": 1, "maximum": 1000}), q("user_id"), q("team_id"),
                       q("key_alias", "search: a part of the alias, masked key, user or team"), q("return_full_object", "true: whole records", {"enum": ["true", "false"]})]
    return {
        "/key/generate": {"post": op("Create a key (the raw key is in this answer only)", K, body=json_body(ref("KeyRequest"), False), response=ref("NewKey"))},
        "/key/info": {"get": op("A key's record; a virtual key may read its own", K, security=ANY_KEY, params=[KEY_Q], response=ref("KeyInfo"), errors=(400, 401, 403, 404))},
        "/key/update": {"post": op("Change a key's limits, models, budget, expiry", K, body=json_body(ref("KeyUpdate")), response=ref("Key"), errors=(400, 401, 403, 404))},
        "/key/delete": {"post": op("Delete keys", K, body=json_body(ref("KeyDelete")), response=obj({"deleted_keys": STRS}), errors=(400, 401, 403, 404))},
        "/key/list": {"get": op("List keys (paged, searchable)", K, params=key_list_params, response=ref("KeyList"))},
        "/key/regenerate": {"post": op("New secret for a key; limits and spend stay", K, body=json_body(ref("KeyRegenerate")), response=ref("NewKey"), errors=(400, 401, 403, 404))},
        "/key/{key}/regenerate": {"post": op("New secret for the key in the path (LiteLLM's form)", K, params=[path_param("key", "the key or its hash")], body=json_body(obj({"new_key": STR, **KEY_FIELDS}), False), response=ref("NewKey"), errors=(400, 401, 403, 404))},
        "/key/block": {"post": op("Block a key", K, body=json_body(ref("KeyRef")), response=ref("Key"), errors=(400, 401, 403, 404))},
        "/key/unblock": {"post": op("Unblock a key", K, body=json_body(ref("KeyRef")), response=ref("Key"), errors=(400, 401, 403, 404))},
        "/user/new": {"post": op("Create a user (and a key, unless auto_create_key is false)", U, body=json_body(ref("UserRequest"), False), response=ref("User"))},
        "/user/info": {"get": op("A user with their keys and teams", U, params=[q("user_id", required=True)], response=ref("UserInfo"), errors=(400, 401, 403, 404))},
        "/user/update": {"post": op("Change a user", U, body=json_body(ref("UserUpdate")), response=ref("User"), errors=(400, 401, 403, 404))},
        "/user/delete": {"post": op("Delete users (and their keys)", U, body=json_body(obj({"user_ids": STRS}, ("user_ids",))), response=obj({"deleted_users": STRS}), errors=(400, 401, 403, 404))},
        "/user/list": {"get": op("List users", U, params=[*PAGE, q("page_size", "", {"type": "integer", "minimum": 1, "maximum": 1000})], response=obj({"users": {"type": "array", "items": ref("User")}, "page": INT, "page_size": INT}))},
        "/user/daily/activity": {"get": op("Daily activity with breakdowns (LiteLLM's SpendAnalyticsPaginatedResponse)", S, params=[*RANGE, q("model"), q("api_key"), q("user_id"), *PAGE, q("page_size", "days per page", {"type": "integer", "minimum": 1, "maximum": 1000})], response=ref("DailyActivity"))},
        "/team/new": {"post": op("Create a team", T, body=json_body(ref("TeamRequest"), False), response=ref("Team"))},
        "/team/info": {"get": op("A team with its keys", T, params=[q("team_id", required=True)], response=ref("TeamInfo"), errors=(400, 401, 403, 404))},
        "/team/update": {"post": op("Change a team", T, body=json_body(ref("TeamUpdate")), response=ref("Team"), errors=(400, 401, 403, 404))},
        "/team/delete": {"post": op("Delete teams (and their keys)", T, body=json_body(obj({"team_ids": STRS}, ("team_ids",))), response=obj({"deleted_teams": STRS}), errors=(400, 401, 403, 404))},
        "/team/list": {"get": op("List teams", T, response={"type": "array", "items": ref("Team")})},
        "/team/member_add": {"post": op("Add members", T, body=json_body(ref("MemberAdd")), response=ref("Team"), errors=(400, 401, 403, 404))},
        "/team/member_delete": {"post": op("Remove a member", T, body=json_body(ref("MemberDelete")), response=ref("Team"), errors=(400, 401, 403, 404))},
        "/team/block": {"post": op("Block a team (all its keys)", T, body=json_body(ref("TeamRef")), response=ref("Team"), errors=(400, 401, 403, 404))},
        "/team/unblock": {"post": op("Unblock a team", T, body=json_body(ref("TeamRef")), response=ref("Team"), errors=(400, 401, 403, 404))},
        "/spend/logs": {"get": op("The spend log, newest first", S, params=[q("api_key", "key or hash"), q("user_id"), q("team_id"), q("model"), q("request_id"), *RANGE, q("limit", "", {"type": "integer", "minimum": 1, "maximum": 100000})], response={"type": "array", "items": ref("SpendLog")})},
        "/spend/logs/ui": {"get": op("The spend log, paged and filtered", S, params=[q("api_key"), q("user_id"), q("team_id"), q("model"), q("request_id"), q("status_filter", "", {"enum": ["success", "failure"]}), *RANGE, *PAGE, q("page_size", "", {"type": "integer", "minimum": 1, "maximum": 500})], response=obj({"data": {"type": "array", "items": ref("SpendLog")}, "total": INT, "page": INT, "page_size": INT, "total_pages": INT}))},
        "/spend/tags": {"get": op("Spend per request tag", S, params=[*RANGE, q("tags", "comma-separated tags to include")], response={"type": "array", "items": obj({"individual_request_tag": STR, "log_count": INT, "total_spend": NUM})})},
        "/spend/calculate": {"post": op("What a request would cost, or what an answer cost", S, body=json_body(ref("SpendCalculate")), response=obj({"cost": NUM}))},
        "/global/spend": {"get": op("Total spend of the last 30 days", S, response=obj({"spend": NUM, "max_budget": nullable(NUM)}))},
        "/global/spend/logs": {"get": op("Spend per day, last 30 days", S, params=[q("api_key", "only this key (or hash)")], response={"type": "array", "items": obj({"date": STR, "spend": NUM, "api_key": STR})})},
        "/global/spend/report": {"get": op("Spend report by team, customer (user), api_key, user or model", S, params=[q("start_date", "", DATE, True), q("end_date", "", DATE, True), q("group_by", "", {"enum": ["team", "customer", "api_key", "user", "model"]}), q("api_key"), q("internal_user_id"), q("team_id")], response={"type": "array", "items": ANY_OBJ})},
        "/keystile/activity": {"get": op("The admin UI's overview: requests, errors, spend, tokens, latency over time; top spenders", S, params=[*RANGE, q("bucket", "seconds per bucket (default: an hour up to 2 days, else a day)", {"type": "integer", "minimum": 60, "maximum": 31622400})], response=ref("Activity"))},
        "/model/info": {"get": op("Deployments (a virtual key sees those it may use)", M, security=ANY_KEY, params=[q("litellm_model_id", "one deployment by id")], response=ref("ModelInfo"), errors=(400, 401, 404))},
        "/v1/model/info": {"get": op("Deployments (same as /model/info)", M, security=ANY_KEY, params=[q("litellm_model_id", "one deployment by id")], response=ref("ModelInfo"), errors=(400, 401, 404))},
        "/model_group/info": {"get": op("Model groups", M, security=ANY_KEY, params=[q("model_group", "one group")], response=ref("ModelGroupInfo"), errors=(400, 401, 404))},
        "/model/new": {"post": op("Add a deployment at run time (stored; every instance serves it)", M, body=json_body(ref("ModelNew")), response=ANY_OBJ)},
        "/model/delete": {"post": op("Remove a deployment added at run time", M, body=json_body(ref("ModelDelete")), response=obj({"message": STR}), errors=(400, 401, 403, 404))},
        "/health": {"get": op("Deployments' health (LiteLLM's shape); ?model= or ?model_id= checks them live", M, params=[q("model", "live-check this model group's deployments"), q("model_id", "live-check one deployment")], response=ref("Health"))},
        "/health/liveliness": {"get": op("Liveness probe", O, security=PUBLIC, response=obj({"status": STR}), errors=())},
        "/health/liveness": {"get": op("Liveness probe", O, security=PUBLIC, response=obj({"status": STR}), errors=())},
        "/health/readiness": {"get": op("Readiness probe (checks the database)", O, security=PUBLIC, response=obj({"status": STR, "db": STR}), errors=(503,))},
        "/metrics": {"get": op("Prometheus metrics", O, security=PUBLIC, response={"type": "string"}, errors=(), media="text/plain")},
        "/keystile/config": {"get": op("The running configuration, secrets masked", O, response=ANY_OBJ)},
        "/ui": {"get": op("The admin UI (a page)", "admin UI", security=PUBLIC, response={"type": "string"}, errors=(), media="text/html")},
        "/ui/login": {"post": op("Sign in to the admin UI with the master key: sets the session cookie", "admin UI", security=PUBLIC,
                                  body=json_body(obj({"key": STR}, ("key",))), response=obj({"signed_in": BOOL, "csrf_token": STR}), errors=(400, 401, 403, 429))},
        "/ui/static/{file}": {"get": op("The admin UI's script, styles and icon", "admin UI", security=PUBLIC, params=[path_param("file", "app.js, app.css, logo.svg, docs.js, docs.css, docs.html")], response={"type": "string"}, errors=(404,), media="text/plain")},
        "/ui/session": {"get": op("The signed-in page's CSRF token", "admin UI", security=[{"adminSession": []}], response=obj({"signed_in": BOOL, "csrf_token": STR}), errors=(401,))},
        "/ui/logout": {"post": op("Sign out (needs the CSRF token)", "admin UI", security=[{"adminSession": []}], response=obj({"signed_in": BOOL}), errors=(403,))},
        "/openapi.json": {"get": op("This document", "reference", security=PUBLIC, response=ANY_OBJ, errors=())},
        "/docs": {"get": op("This document, readable", "reference", security=PUBLIC, response={"type": "string"}, errors=(), media="text/html")},
        "/": {"get": op("The gateway is there (Claude Code sends HEAD /)", O, security=PUBLIC, response=obj({"name": STR, "status": STR}), errors=())},
    }


@lru_cache(maxsize=1)
def document() -> dict:
    paths: dict[str, dict] = {}
    for table in (_inference(), _catalog(), _admin()):
        paths.update(table)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "keystile",
            "version": __version__,
            "description": "An LLM gateway: Anthropic, OpenAI (Chat, Responses, Embeddings) and Gemini APIs in front of your "
            "upstreams, with virtual keys, budgets and rate limits; and an admin API shaped like LiteLLM's. Admin routes take the "
            "master key (Authorization: Bearer) or an admin UI session (cookie + x-keystile-csrf on changes).",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": n} for n in ("inference", "models", "keys", "users", "teams", "spend", "models and health", "operations", "admin UI", "reference")],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "masterKey": {"type": "http", "scheme": "bearer", "description": "the master key"},
                "virtualKey": {"type": "http", "scheme": "bearer", "description": "a virtual key (also accepted in x-api-key, api-key, x-goog-api-key)"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "keystileKey": {"type": "apiKey", "in": "header", "name": "x-keystile-key"},
                "adminSession": {"type": "apiKey", "in": "cookie", "name": "keystile_session", "description": "set by /ui/login; changes also need x-keystile-csrf"},
            },
        },
    }


async def _get_only(scope: Scope, send: Send) -> bool:
    if scope["method"] in ("GET", "HEAD"):
        return True
    from keystile.apiformat import ApiFormat
    from keystile.errors import ErrorKind, GatewayError
    from keystile.server.http import send_error

    await send_error(send, ApiFormat.OPENAI, GatewayError(ErrorKind.METHOD_NOT_ALLOWED, f"{scope['path']} accepts GET."))
    return False


def routes(admin: "Admin") -> dict[str, "Handler"]:
    from keystile.server.ui import SECURITY_HEADERS, load_static

    body = orjson.dumps(document())
    docs_page = load_static()["docs.html"][1]

    async def openapi_json(scope: Scope, receive: Receive, send: Send) -> None:
        if await _get_only(scope, send):
            await send_bytes(send, 200, body, [(b"content-type", b"application/json"), (b"cache-control", b"no-cache")])

    async def docs(scope: Scope, receive: Receive, send: Send) -> None:
        if await _get_only(scope, send):
            await send_bytes(send, 200, docs_page, [(b"content-type", b"text/html; charset=utf-8"), *SECURITY_HEADERS])

    return {"/openapi.json": openapi_json, "/docs": docs}
