"""A real, fast mock LLM provider: Anthropic, OpenAI and Azure OpenAI routes over HTTP/1.1.

Tests and the benchmark point keystile's upstreams at it. It answers with the deterministic
replies of ``keystile.providers.mock_replies``, records every request it receives, and fails
on demand the ways real providers fail. Run it with
``python -m keystile.testing.upstream --port 0 [--latency-ms X]`` or in-process with
``MockUpstream`` / ``start_in_thread``.

Routes (anything else is a 404 in the caller's format):

    POST /v1/messages                       Anthropic Messages (JSON or SSE)
    POST /v1/messages/count_tokens          Anthropic token counting
    POST /v1/chat/completions, /chat/completions              OpenAI Chat Completions
    POST /v1/embeddings, /embeddings                           OpenAI embeddings
    POST /openai/deployments/{d}/chat/completions?api-version= Azure OpenAI (needs api-key)
    POST /openai/deployments/{d}/embeddings?api-version=       Azure OpenAI embeddings
    POST /v1/responses, /responses           OpenAI Responses (JSON or SSE; stateless: a previous_response_id is a 404)
    POST /v1beta/models/{m}:generateContent, :streamGenerateContent?alt=sse, :countTokens
                                             Gemini (needs x-goog-api-key or Bearer)
    POST /model/{id}/invoke, /model/{id}/invoke-with-response-stream
                                             AWS Bedrock (Bearer API key, or SigV4 checked with botocore;
                                             AWS event-stream frames; see ``testing.clouds``)
    POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{m}:rawPredict, :streamRawPredict
         …/publishers/anthropic/models/count-tokens:rawPredict
         …/publishers/google/models/{m}:generateContent, :streamGenerateContent?alt=sse, :countTokens
                                             Vertex AI (needs a token from /token, unexpired, or x-goog-api-key)
    POST /token                              a fake OAuth token endpoint for google-auth service accounts
    GET  /v1/models, /models                 Anthropic shape if anthropic-version is sent

Control API (never recorded):

    GET    /_mock/requests      recorded requests: n, connection, method, path, query,
                                headers ([[name, value]], names lowercased), body (text), fault
    DELETE /_mock/requests      forget them
    POST   /_mock/faults        replace the fault rules with a JSON list (see ``FaultRule``)
    GET    /_mock/faults        the current rules, with the ``times`` they have left
    DELETE /_mock/faults        no faults
    GET    /_mock/stats         counters, incl. open connections and closes by peer
    GET    /_mock/connections   open and recently closed connections
    POST   /_mock/reset         requests, faults and counters back to empty (and tokens, their lifetime)

A fault rule: ``{"match": {"path", "model", "header": [name, value?], "stream", "method"},
"times": N, "action": {"type": ...}}``; every match field is optional and they are AND-ed;
the first rule that matches and has ``times`` left applies (``times`` absent: unlimited).
Actions: ``status`` (status, body, headers), ``hang``, ``delay`` (seconds), ``close``,
``reset_after_events`` (events, seconds), ``malformed_after_events`` (events, seconds — a pause after the first
event, as for ``error_after_events``; in an event stream the broken event is a frame with a wrong checksum), ``event_delay`` (seconds, pauses —
at most that many pauses, before the 2nd, 3rd, … event, the rest at once: a stream of a known length),
``error_after_events`` (events, status — default 529, seconds — a pause after the first event: that
many events, then the format's in-band error event and a clean end; a request that does not
stream gets the status instead).
An effort (``reasoning_effort``, ``reasoning.effort``) for an OpenAI model that does not reason
(``gpt-4o``, ``gpt-4.1``, …) is a 400, as OpenAI answers it.
A request header ``x-mock-cache: read|write|none`` picks how ``cache_control`` prompt
prefixes are reported in usage (default ``read``); ``x-mock-tools: none`` answers with text
even when tools are offered (an agent CLI under test then prints an answer instead of looping
through placeholder tool calls).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import fnmatch
import http
import itertools
import re
import signal
import socket
import struct
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Coroutine
from urllib.parse import unquote

import httptools
import orjson

from keystile.apiformat import ApiFormat
from keystile.errors import ErrorKind, error_body, error_headers, kind_for_status
from keystile.providers import mock_replies, mock_replies_gemini, mock_replies_responses
from keystile.testing.clouds import BEDROCK_PATH, VERTEX_PATH, TokenIssuer, bedrock_auth_error, bedrock_body_error, vertex_body_error

try:  # uvloop is a dependency, but the server works on plain asyncio too
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

MOCK_MODELS = ("mock-claude", "mock-gpt", "mock-embedding")
_AZURE_PATH = re.compile(rb"^/openai/deployments/([^/]+)/(chat/completions|embeddings)$")
_ANTHROPIC, _OPENAI = ApiFormat.ANTHROPIC, ApiFormat.OPENAI
_JSON = b"application/json"
_SSE = b"text/event-stream"
_RESPONSE_CACHE_LIMIT = 512
_CACHEABLE_BODY = 64 * 1024

# Route kinds: what the body means, independent of the URL it came in on.
MESSAGES, COUNT_TOKENS, CHAT, EMBEDDINGS, MODELS = "messages", "count_tokens", "chat", "embeddings", "models"
RESPONSES = "responses"
GEMINI_GENERATE, GEMINI_STREAM, GEMINI_COUNT = "generateContent", "streamGenerateContent", "countTokens"
BEDROCK_INVOKE, BEDROCK_STREAM = "invoke", "invoke-with-response-stream"
VERTEX_RAW, VERTEX_STREAM_RAW = "rawPredict", "streamRawPredict"
TOKEN = "token"
_EVENTSTREAM = b"application/vnd.amazon.eventstream"
_BEDROCK, _VERTEX = ApiFormat.BEDROCK, ApiFormat.VERTEX
_GEMINI_PATH = re.compile(rb"^/(?:v1|v1beta)/models/([^/:]+):(generateContent|streamGenerateContent|countTokens)$")
_ROUTES: dict[bytes, tuple[str, ApiFormat, bytes]] = {
    b"/v1/messages": (MESSAGES, _ANTHROPIC, b"POST"),
    b"/v1/messages/count_tokens": (COUNT_TOKENS, _ANTHROPIC, b"POST"),
    b"/v1/chat/completions": (CHAT, _OPENAI, b"POST"),
    b"/chat/completions": (CHAT, _OPENAI, b"POST"),
    b"/v1/embeddings": (EMBEDDINGS, _OPENAI, b"POST"),
    b"/embeddings": (EMBEDDINGS, _OPENAI, b"POST"),
    b"/v1/responses": (RESPONSES, _OPENAI, b"POST"),
    b"/responses": (RESPONSES, _OPENAI, b"POST"),
    b"/v1/models": (MODELS, _OPENAI, b"GET"),
    b"/models": (MODELS, _OPENAI, b"GET"),
}


# ---------------------------------------------------------------------------------------
# Requests and fault rules


class Request:
    """One parsed HTTP request; the body's JSON is decoded on first use only."""

    __slots__ = ("n", "connection", "method", "path", "query", "headers", "body", "keep_alive", "_json")

    def __init__(self, method: bytes, url: bytes, headers: list, body: bytes, keep_alive: bool) -> None:
        path, _, query = url.partition(b"?")
        self.n = 0
        self.connection = 0
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self._json: Any = self

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def query_param(self, name: str) -> str | None:
        for pair in self.query.decode("latin-1").split("&"):
            key, sep, value = pair.partition("=")
            if key == name and sep:
                return value
        return None

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        if self._json is self:
            try:
                self._json = orjson.loads(self.body) if self.body else None
            except orjson.JSONDecodeError:
                self._json = None
        return self._json

    def record(self, fault: str | None) -> tuple:
        return (self.n, self.connection, self.method, self.path, self.query, self.headers, self.body, fault)


def _render_record(record: tuple) -> dict:
    n, connection, method, path, query, headers, body, fault = record
    return {
        "n": n,
        "connection": connection,
        "method": method.decode(),
        "path": path.decode("latin-1"),
        "query": query.decode("latin-1"),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers],
        "body": body.decode("utf-8", "replace"),
        "fault": fault,
    }


_ACTIONS = {
    "status": {"status", "body", "headers"},
    "hang": set(),
    "delay": {"seconds"},
    "close": set(),
    "reset_after_events": {"events", "seconds"},
    "malformed_after_events": {"events", "seconds"},
    "event_delay": {"seconds", "pauses"},
    "error_after_events": {"events", "status", "seconds"},
}


@dataclass(slots=True)
class FaultRule:
    """When a request matches, do ``action`` instead of (or around) the normal answer."""

    action: dict
    path: str | None = None
    model: str | None = None
    header: tuple[bytes, bytes | None] | None = None
    stream: bool | None = None
    method: bytes | None = None
    times: int | None = None
    """Applications left; None is unlimited."""

    @property
    def kind(self) -> str:
        return self.action["type"]

    def matches(self, request: Request) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.method is not None and request.method != self.method:
            return False
        if self.path is not None:
            path = request.path.decode("latin-1")
            if not (fnmatch.fnmatchcase(path, self.path) if "*" in self.path else path == self.path):
                return False
        if self.header is not None:
            value = request.header(self.header[0])
            if value is None or (self.header[1] is not None and value != self.header[1]):
                return False
        if self.model is not None or self.stream is not None:
            body = request.json()
            body = body if isinstance(body, dict) else {}
            if self.model is not None and body.get("model") != self.model:
                return False
            if self.stream is not None and _asks_to_stream(request) != self.stream:
                return False
        return True


def parse_fault_rules(data: object) -> list[FaultRule]:
    """Validate the JSON posted to ``/_mock/faults``; ValueError says what is wrong."""
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ValueError("fault rules must be a JSON list of rule objects")
    rules = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ValueError(f"rule {i}: not an object")
        action = item.get("action")
        if not isinstance(action, dict) or action.get("type") not in _ACTIONS:
            raise ValueError(f"rule {i}: action.type must be one of {sorted(_ACTIONS)}")
        unknown = set(action) - _ACTIONS[action["type"]] - {"type"}
        if unknown:
            raise ValueError(f"rule {i}: unknown action fields {sorted(unknown)}")
        kind = action["type"]
        if kind == "status" and not (isinstance(action.get("status"), int) and 100 <= action["status"] <= 999):
            raise ValueError(f"rule {i}: status action needs an integer status")
        if kind in ("delay", "event_delay") and not isinstance(action.get("seconds"), (int, float)):
            raise ValueError(f"rule {i}: {kind} needs seconds")
        if "pauses" in action and not (isinstance(action["pauses"], int) and action["pauses"] >= 0):
            raise ValueError(f"rule {i}: pauses must be a non-negative integer")
        if kind in ("reset_after_events", "malformed_after_events", "error_after_events") and not isinstance(action.get("events"), int):
            raise ValueError(f"rule {i}: {kind} needs an integer events")
        if "headers" in action and not isinstance(action["headers"], dict):
            raise ValueError(f"rule {i}: headers must be an object")
        match = item.get("match") or {}
        if not isinstance(match, dict):
            raise ValueError(f"rule {i}: match must be an object")
        unknown = set(match) - {"path", "model", "header", "stream", "method"}
        if unknown:
            raise ValueError(f"rule {i}: unknown match fields {sorted(unknown)}")
        header = match.get("header")
        if header is not None:
            if not (isinstance(header, list) and 1 <= len(header) <= 2 and all(isinstance(h, str) for h in header)):
                raise ValueError(f"rule {i}: match.header must be [name] or [name, value]")
            header = (header[0].lower().encode("latin-1"), header[1].encode("latin-1") if len(header) == 2 else None)
        times = item.get("times")
        if times is not None and not (isinstance(times, int) and times >= 0):
            raise ValueError(f"rule {i}: times must be a non-negative integer")
        method = match.get("method")
        rules.append(
            FaultRule(
                action=action,
                path=match.get("path"),
                model=match.get("model"),
                header=header,
                stream=match.get("stream"),
                method=method.upper().encode() if isinstance(method, str) else None,
                times=times,
            )
        )
    return rules


# ---------------------------------------------------------------------------------------
# Answers


@dataclass(slots=True)
class Answer:
    """What to send back: a complete body, or SSE events streamed as chunks."""

    status: int
    body: bytes = b""
    events: list[bytes] | None = None
    content_type: bytes = _JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def _reason(status: int) -> bytes:
    if status == 529:
        return b"Overloaded"
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Unknown"


_STATUS_LINES = {s: b"HTTP/1.1 %d %s\r\n" % (s, _reason(s)) for s in (200, 400, 401, 404, 405, 429, 500, 529)}

_DEFAULT_MESSAGES = {
    400: "Invalid request",
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "Not found",
    408: "Request timed out",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "Number of request tokens has exceeded your per-minute rate limit",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
    529: "Overloaded",
}


def _error(fmt: ApiFormat, kind: ErrorKind, message: str, request_id: str, status: int | None = None) -> Answer:
    status = status or kind.status
    body = error_body(fmt, kind, message, status=status)
    if fmt is _ANTHROPIC:
        body["request_id"] = request_id
    return Answer(status, orjson.dumps(body), headers=error_headers(fmt, status))


def _models_answer(request: Request) -> Answer:
    if request.header(b"anthropic-version") is not None:
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
            for m in MOCK_MODELS
        ]
        body = {"data": data, "has_more": False, "first_id": MOCK_MODELS[0], "last_id": MOCK_MODELS[-1]}
    else:
        data = [
            {"id": m, "object": "model", "created": mock_replies.CREATED, "owned_by": "keystile"}
            for m in MOCK_MODELS
        ]
        body = {"object": "list", "data": data}
    return Answer(200, orjson.dumps(body))


def _generate(
    kind: str,
    fmt: ApiFormat,
    body: object,
    cache_mode: str,
    azure_model: str | None,
    request_id: str,
    auto_tools: bool = True,
) -> Answer:
    """Validate the body lightly, as the real APIs do, and produce the deterministic reply."""
    if not isinstance(body, dict):
        return _error(fmt, ErrorKind.INVALID_REQUEST, "The request body is not valid JSON.", request_id)
    if kind in (GEMINI_GENERATE, GEMINI_STREAM, GEMINI_COUNT):
        return _generate_gemini(kind, body, azure_model or "gemini", cache_mode, request_id, auto_tools)
    if kind in (BEDROCK_INVOKE, BEDROCK_STREAM):
        problem = bedrock_body_error(body)
        if problem is not None:
            return _error(_BEDROCK, ErrorKind.INVALID_REQUEST, problem, request_id)
        body = {**body, "model": azure_model, "stream": kind == BEDROCK_STREAM}
        answer = _generate(MESSAGES, _ANTHROPIC, body, cache_mode, None, request_id, auto_tools)
        if answer.status != 200:  # Bedrock says it in its own shape
            message = orjson.loads(answer.body)["error"]["message"]
            return _error(_BEDROCK, ErrorKind.INVALID_REQUEST, f"Malformed input request: {message}", request_id)
        if kind == BEDROCK_STREAM:
            return Answer(200, events=mock_replies.bedrock_frames(answer.events or []), content_type=_EVENTSTREAM)
        return answer
    if kind in (VERTEX_RAW, VERTEX_STREAM_RAW):
        problem = vertex_body_error(body)
        if problem is not None:
            return _error(_VERTEX, ErrorKind.INVALID_REQUEST, problem, request_id)
        body = {k: v for k, v in body.items() if k != "anthropic_version"}
        if azure_model == "count-tokens":
            if "model" not in body:
                return _error(_VERTEX, ErrorKind.INVALID_REQUEST, "model: Field required", request_id)
            return Answer(200, orjson.dumps(mock_replies.anthropic_count_tokens(body)))
        if "model" in body:
            return _error(_VERTEX, ErrorKind.INVALID_REQUEST, "model: Extra inputs are not permitted", request_id)
        body = {**body, "model": azure_model, "stream": kind == VERTEX_STREAM_RAW}
        return _generate(MESSAGES, _ANTHROPIC, body, cache_mode, None, request_id, auto_tools)
    if azure_model is not None and "model" not in body:
        body = {**body, "model": azure_model}
    refused = _unsupported_effort(kind, body)
    if refused is not None:
        return refused
    if kind == RESPONSES:
        if "model" not in body:
            return _error(fmt, ErrorKind.INVALID_REQUEST, "Missing required parameter: 'model'.", request_id)
        if body.get("previous_response_id"):
            return _error(fmt, ErrorKind.NOT_FOUND, f"Previous response with id '{body['previous_response_id']}' not found.", request_id)
        if body.get("stream"):
            events = mock_replies_responses.responses_stream(body, cache_mode=cache_mode, auto_tools=auto_tools)
            return Answer(200, events=events, content_type=_SSE)
        return Answer(200, orjson.dumps(mock_replies_responses.responses_response(body, cache_mode=cache_mode, auto_tools=auto_tools)))
    if fmt is _ANTHROPIC:
        required = ("model", "messages", "max_tokens") if kind == MESSAGES else ("model", "messages")
    elif kind == CHAT:
        required = ("model", "messages")
    else:
        required = ("model", "input")
    for name in required:
        if name not in body:
            message = f"{name}: Field required" if fmt is _ANTHROPIC else f"Missing required parameter: '{name}'."
            return _error(fmt, ErrorKind.INVALID_REQUEST, message, request_id)
    if kind == MESSAGES:
        if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
            return _error(fmt, ErrorKind.INVALID_REQUEST, "max_tokens: must be a positive integer", request_id)
        if not isinstance(body["messages"], list) or not body["messages"]:
            return _error(fmt, ErrorKind.INVALID_REQUEST, "messages: at least one message is required", request_id)
        if body.get("stream"):
            return Answer(200, events=mock_replies.anthropic_stream(body, cache_mode=cache_mode, auto_tools=auto_tools), content_type=_SSE)
        return Answer(200, orjson.dumps(mock_replies.anthropic_message(body, cache_mode=cache_mode, auto_tools=auto_tools)))
    if kind == COUNT_TOKENS:
        return Answer(200, orjson.dumps(mock_replies.anthropic_count_tokens(body)))
    if kind == CHAT:
        if not isinstance(body["messages"], list) or not body["messages"]:
            return _error(fmt, ErrorKind.INVALID_REQUEST, "'messages' must contain at least one message.", request_id)
        if body.get("stream"):
            return Answer(200, events=mock_replies.openai_stream(body, cache_mode=cache_mode, auto_tools=auto_tools), content_type=_SSE)
        return Answer(200, orjson.dumps(mock_replies.openai_completion(body, cache_mode=cache_mode, auto_tools=auto_tools)))
    return Answer(200, orjson.dumps(mock_replies.openai_embeddings(body)))


# OpenAI's models that do not reason answer an effort with this 400 (as gpt-4o and gpt-4.1 do).
_NO_REASONING_MODELS = ("gpt-3", "gpt-4", "chatgpt-", "gpt-5-chat")


def _unsupported_effort(kind: str, body: dict) -> Answer | None:
    model = body.get("model")
    if not (isinstance(model, str) and model.lower().startswith(_NO_REASONING_MODELS)):
        return None
    reasoning = body.get("reasoning")
    if kind == CHAT and "reasoning_effort" in body:
        param = "reasoning_effort"
    elif kind == RESPONSES and isinstance(reasoning, dict) and "effort" in reasoning:
        param = "reasoning.effort"
    else:
        return None
    error = {"message": f"Unsupported parameter: '{param}' is not supported with this model.",
             "type": "invalid_request_error", "param": param, "code": "unsupported_parameter"}
    return Answer(400, orjson.dumps({"error": error}))


def _generate_gemini(kind: str, body: dict, model: str, cache_mode: str, request_id: str, auto_tools: bool) -> Answer:
    if kind == GEMINI_COUNT:
        return Answer(200, orjson.dumps(mock_replies_gemini.gemini_count_tokens(body, model)))
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return _error(ApiFormat.GEMINI, ErrorKind.INVALID_REQUEST, "* GenerateContentRequest.contents: contents is not specified", request_id)
    if kind == GEMINI_STREAM:
        events = mock_replies_gemini.gemini_stream(body, model, cache_mode=cache_mode, auto_tools=auto_tools)
        return Answer(200, events=events, content_type=_SSE)
    return Answer(200, orjson.dumps(mock_replies_gemini.gemini_response(body, model, cache_mode=cache_mode, auto_tools=auto_tools)))


# ---------------------------------------------------------------------------------------
# The server


class MockUpstream:
    """The mock provider's state (recorded requests, fault rules, counters) and its listener."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        latency_ms: float = 0.0,
        record_limit: int = 10_000,
        coalesce_stream: bool = False,
    ) -> None:
        self.host = host
        # True: a whole undelayed stream goes out in one write (benchmark calibration), not one per event.
        self.coalesce_stream = coalesce_stream
        self.port = 0
        self.latency = latency_ms / 1000.0
        self._records: collections.deque = collections.deque(maxlen=record_limit or None)
        self._record = record_limit != 0
        self.faults: list[FaultRule] = []
        self._request_ids = itertools.count(1)
        self._connection_ids = itertools.count(1)
        self._connections: dict[int, _Connection] = {}
        self._closed_connections: collections.deque = collections.deque(maxlen=1000)
        self._cache: dict[tuple, Answer] = {}
        self._server: asyncio.AbstractServer | None = None
        self.counters = self._zero_counters()
        self.tokens = TokenIssuer()
        """Vertex AI's OAuth tokens: ``lifetime``, ``public_keys`` of service accounts, ``issued``."""

    @staticmethod
    def _zero_counters() -> dict[str, int]:
        return {
            "requests": 0,
            "responses": 0,
            "faults_applied": 0,
            "connections_opened": 0,
            "connections_closed_by_peer": 0,
            "connections_closed_by_server": 0,
            "disconnects_during_response": 0,
        }

    # -- lifecycle

    async def start(self, port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self._connections.values()):
                connection.close(abort=True)
            await self._server.wait_closed()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- state, also reachable over /_mock/

    def requests(self) -> list[dict]:
        return [_render_record(r) for r in self._records]

    def clear_requests(self) -> None:
        self._records.clear()

    def set_faults(self, rules: list) -> None:
        """Replace the fault rules: ``FaultRule`` objects or their JSON form."""
        if all(isinstance(rule, FaultRule) for rule in rules):
            self.faults = list(rules)
        else:
            self.faults = parse_fault_rules(rules)

    def clear_faults(self) -> None:
        self.faults = []

    def stats(self) -> dict:
        return {
            **self.counters,
            "connections_open": len(self._connections),
            "recorded": len(self._records),
            "tokens_issued": self.tokens.issued,
        }

    def connections(self) -> list[dict]:
        return [c.describe() for c in self._connections.values()] + list(self._closed_connections)

    def reset(self) -> None:
        self.clear_requests()
        self.clear_faults()
        self.tokens.reset()
        self.counters = self._zero_counters()
        self._closed_connections.clear()

    # -- request handling

    def handle(self, conn: _Connection, request: Request) -> Coroutine | None:
        """Answer ``request``: synchronously when nothing waits, else return a coroutine."""
        if request.path.startswith(b"/_mock/"):
            conn.send(self._control(request), request.keep_alive)
            return None
        n = next(self._request_ids)
        request.n = n
        request.connection = conn.id
        request_id = b"req_mock_%d" % n
        self.counters["requests"] += 1

        fault = None
        if self.faults:
            for rule in self.faults:
                if rule.matches(request):
                    fault = rule
                    if rule.times is not None:
                        rule.times -= 1
                    self.counters["faults_applied"] += 1
                    break
        if self._record:
            self._records.append(request.record(fault.kind if fault else None))

        route = _ROUTES.get(request.path)
        azure_model = None  # the model named by the path (Azure's deployment, Gemini's model)
        if route is None:
            azure = _AZURE_PATH.match(request.path)
            gemini = _GEMINI_PATH.match(request.path) if azure is None else None
            if azure is not None:
                route = (CHAT if azure.group(2) == b"chat/completions" else EMBEDDINGS, _OPENAI, b"POST")
                azure_model = azure.group(1).decode("latin-1")
            elif gemini is not None:
                route = (gemini.group(2).decode(), ApiFormat.GEMINI, b"POST")
                azure_model = gemini.group(1).decode("latin-1")
            else:
                route, azure_model = _cloud_route(request.path)
        fmt = route[1] if route and route[0] != MODELS else self._guess_format(request)
        id_header = b"x-amzn-requestid" if fmt is _BEDROCK else b"request-id" if fmt is _ANTHROPIC or fmt is _VERTEX else b"x-request-id"

        if fault is not None and fault.kind == "close":
            conn.close()
            return None
        if fault is not None and fault.kind == "error_after_events" and not _asks_to_stream(request):
            answer = self._status_fault({"status": fault.action.get("status", 529)}, fmt, request_id.decode())
        elif fault is not None and fault.kind == "status":
            answer = self._status_fault(fault.action, fmt, request_id.decode())
        else:
            answer = self._answer(request, route, fmt, azure_model, request_id.decode())
        answer.headers.append((id_header, request_id))
        if fault is None and not self.latency:
            conn.send(answer, request.keep_alive)
            return None
        return conn.send_slowly(answer, request.keep_alive, fault.action if fault else None, self.latency)

    def _answer(
        self, request: Request, route: tuple | None, fmt: ApiFormat, azure_model: str | None, request_id: str
    ) -> Answer:
        if route is None:
            return _error(fmt, ErrorKind.NOT_FOUND, f"Not found: {request.path.decode('latin-1')}", request_id)
        kind, _, method = route
        if request.method != method:
            return _error(fmt, ErrorKind.METHOD_NOT_ALLOWED, f"Method {request.method.decode()} not allowed", request_id)
        if kind == MODELS:
            return _models_answer(request)
        if kind == TOKEN:
            status, payload = self.tokens.issue(request.body)
            return Answer(status, orjson.dumps(payload))
        if kind in (BEDROCK_INVOKE, BEDROCK_STREAM):
            refused = bedrock_auth_error(request.method, request.path, request.query, request.headers, request.body)
            if refused is not None:
                status, name, message = refused
                return Answer(status, orjson.dumps({"message": message}), headers=[(b"x-amzn-errortype", name.encode())])
        elif request.path.startswith(b"/v1/projects/"):  # Vertex AI: an OAuth token from /token, or an API key
            if request.header(b"x-goog-api-key") is None and not self.tokens.valid(request.header(b"authorization")):
                message = (
                    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                    "or other valid authentication credential."
                )
                return _error(ApiFormat.GEMINI, ErrorKind.AUTHENTICATION, message, request_id)
        elif fmt is _ANTHROPIC:
            if request.header(b"x-api-key") is None and request.header(b"authorization") is None:
                return _error(fmt, ErrorKind.AUTHENTICATION, "x-api-key header is required", request_id)
        if fmt is ApiFormat.GEMINI and not request.path.startswith(b"/v1/projects/"):
            if request.header(b"x-goog-api-key") is None and request.header(b"authorization") is None:
                return _error(fmt, ErrorKind.AUTHENTICATION, "Method doesn't allow unregistered callers. Please use API Key.", request_id)
        elif azure_model is not None and request.path.startswith(b"/openai/"):
            if not request.query_param("api-version"):
                return _error(fmt, ErrorKind.INVALID_REQUEST, "Missing required query parameter: api-version", request_id)
            if request.header(b"api-key") is None:
                return _error(
                    fmt,
                    ErrorKind.AUTHENTICATION,
                    "Access denied due to invalid subscription key or wrong API endpoint. "
                    "Make sure to provide a valid key for an active subscription and use a correct regional API "
                    "endpoint for your resource.",
                    request_id,
                )
        cache_mode = (request.header(b"x-mock-cache") or b"read").decode("latin-1")
        if cache_mode not in ("read", "write", "none"):
            cache_mode = "read"
        auto_tools = request.header(b"x-mock-tools") != b"none"
        # Replies are a pure function of the body, so repeated bodies (the benchmark) are served from memory.
        key = (kind, azure_model, cache_mode, auto_tools, request.body)
        answer = self._cache.get(key)
        if answer is None:
            answer = _generate(kind, fmt, request.json(), cache_mode, azure_model, request_id, auto_tools)
            if answer.status != 200:
                return answer
            if len(request.body) <= _CACHEABLE_BODY:
                if len(self._cache) >= _RESPONSE_CACHE_LIMIT:
                    self._cache.clear()
                self._cache[key] = answer
        return Answer(answer.status, answer.body, answer.events, answer.content_type, [])

    def _status_fault(self, action: dict, fmt: ApiFormat, request_id: str) -> Answer:
        status = action["status"]
        headers = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in (action.get("headers") or {}).items()]
        content_type = _JSON
        body = action.get("body")
        if body is None:
            kind = kind_for_status(status)
            message = _DEFAULT_MESSAGES.get(status) or _reason(status).decode()
            answer = _error(fmt, kind, message, request_id, status)
            payload = answer.body
        elif isinstance(body, str):
            payload = body.encode()
            content_type = b"text/plain; charset=utf-8"
        else:
            payload = orjson.dumps(body)
        for name, value in headers:
            if name == b"content-type":
                content_type = value
        return Answer(status, payload, None, content_type, [h for h in headers if h[0] != b"content-type"])

    @staticmethod
    def _guess_format(request: Request) -> ApiFormat:
        if request.path.startswith(b"/v1/messages") or request.header(b"anthropic-version") is not None:
            return _ANTHROPIC
        return _OPENAI

    def _control(self, request: Request) -> Answer:
        name = request.path[len(b"/_mock/") :].decode("latin-1")
        method = request.method
        try:
            if name == "requests" and method == b"GET":
                return _control_json(self.requests())
            if name == "requests" and method == b"DELETE":
                self.clear_requests()
                return _control_json({"ok": True})
            if name == "faults" and method == b"POST":
                data = orjson.loads(request.body or b"[]")
                self.faults = parse_fault_rules(data)
                return _control_json({"ok": True, "rules": len(self.faults)})
            if name == "faults" and method == b"DELETE":
                self.clear_faults()
                return _control_json({"ok": True})
            if name == "faults" and method == b"GET":
                return _control_json(
                    [{"action": r.action, "times": r.times, "path": r.path, "model": r.model} for r in self.faults]
                )
            if name == "stats" and method == b"GET":
                return _control_json(self.stats())
            if name == "connections" and method == b"GET":
                return _control_json(self.connections())
            if name == "reset" and method == b"POST":
                self.reset()
                return _control_json({"ok": True})
        except (ValueError, orjson.JSONDecodeError) as exc:
            return Answer(400, orjson.dumps({"error": str(exc)}))
        return Answer(404, orjson.dumps({"error": f"no control endpoint {method.decode()} /_mock/{name}"}))

    # -- connection bookkeeping

    def _opened(self, conn: _Connection) -> None:
        self._connections[conn.id] = conn
        self.counters["connections_opened"] += 1

    def _closed(self, conn: _Connection) -> None:
        self._connections.pop(conn.id, None)
        self.counters["connections_closed_by_server" if conn.closed_by_server else "connections_closed_by_peer"] += 1
        if conn.in_response and not conn.closed_by_server:
            self.counters["disconnects_during_response"] += 1
        self._closed_connections.append(conn.describe())


def _control_json(value: object) -> Answer:
    return Answer(200, orjson.dumps(value))


class _Connection(asyncio.Protocol):
    """One client connection: httptools parses, requests are answered one at a time in order."""

    def __init__(self, server: MockUpstream) -> None:
        self.server = server
        self.id = next(server._connection_ids)
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.closed_by_server = False
        self.closed = False
        # A slow response (delayed, hanging, paced stream) is under way and not finished.
        self.in_response = False
        self.requests_seen = 0
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._expect_continue = False
        self._queue: collections.deque[Request] = collections.deque()
        self._task: asyncio.Task | None = None
        self._closed_waiter: asyncio.Future | None = None
        self._drain_waiter: asyncio.Future | None = None
        self._paused = False

    def describe(self) -> dict:
        return {
            "id": self.id,
            "open": not self.closed,
            "requests": self.requests_seen,
            "closed_by": None if not self.closed else ("server" if self.closed_by_server else "peer"),
            "closed_during_response": self.closed and self.in_response and not self.closed_by_server,
        }

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server._opened(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # A WebSocket attempt (Codex's Responses WebSocket mode) is refused as an HTTP-only
            # server refuses it, 426, so the client falls back to POST + SSE at once.
            self._bad_request("This server speaks HTTP only, not WebSocket.", 426)
            return
        except httptools.HttpParserError as exc:
            self._bad_request(f"malformed HTTP request: {exc}")
            return
        self._process()

    def eof_received(self) -> bool | None:
        return None  # close our side too; counted as a close by the peer

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._closed_waiter is not None and not self._closed_waiter.done():
            self._closed_waiter.set_result(None)
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        if self._task is not None:
            self._task.cancel()
        self.server._closed(self)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._expect_continue = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._expect_continue and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self.requests_seen += 1
        self._queue.append(
            Request(self.parser.get_method(), self._url, self._headers, body, self.parser.should_keep_alive())
        )

    # -- answering

    def _process(self) -> None:
        while self._task is None and self._queue and not self.closed and not self.closed_by_server:
            request = self._queue.popleft()
            slow = self.server.handle(self, request)
            if slow is not None:
                self.in_response = True
                self._task = asyncio.get_running_loop().create_task(slow)
                self._task.add_done_callback(self._slow_done)

    def _slow_done(self, task: asyncio.Task) -> None:
        self._task = None
        if not task.cancelled() and task.exception() is not None:
            # A bug in the mock itself: say so loudly and drop the connection rather than hang the client.
            print(f"mock upstream: answering failed: {task.exception()!r}", file=sys.stderr, flush=True)
            self.close(abort=True)
        if not self.closed:
            self.in_response = False
            self._process()

    def send(self, answer: Answer, keep_alive: bool) -> None:
        """Write a whole answer at once (streams too: one chunk per event, back to back)."""
        if self.closed or self.closed_by_server:
            return
        if answer.events is None:
            self.transport.write(_head(answer, len(answer.body), keep_alive) + answer.body)
        else:
            head = _head(answer, None, keep_alive)
            if self.server.coalesce_stream:
                self.transport.write(head + b"".join(map(_chunk, answer.events)) + b"0\r\n\r\n")
            else:
                # One write per event: the peer sees separate chunks arriving, as from a real provider.
                write = self.transport.write
                write(head)
                for event in answer.events:
                    write(_chunk(event))
                write(b"0\r\n\r\n")
        self._finish(keep_alive)

    async def send_slowly(self, answer: Answer, keep_alive: bool, action: dict | None, latency: float) -> None:
        """Answer with latency and/or a fault action applied."""
        kind = action["type"] if action else None
        if latency:
            await asyncio.sleep(latency)
        if kind == "hang":
            await self._wait_closed()
            return
        if kind == "delay":
            await asyncio.sleep(action["seconds"])
        if kind not in ("reset_after_events", "malformed_after_events", "error_after_events", "event_delay"):
            self.send(answer, keep_alive)
            return
        write = self.transport.write
        events = answer.events
        if events is None:
            # Not a stream: a truncated body stands in for the broken stream.
            if kind in ("event_delay", "error_after_events"):  # error_after_events: already the status answer
                self.send(answer, keep_alive)
            elif kind == "reset_after_events":
                write(_head(answer, len(answer.body), keep_alive) + answer.body[: len(answer.body) // 2])
                self.close(abort=True)
            else:
                body = answer.body[: max(len(answer.body) // 2, 1)]
                write(_head(answer, len(body), keep_alive) + body)
                self._finish(keep_alive)
            return
        write(_head(answer, None, keep_alive))
        limit = action.get("events", len(events)) if kind != "event_delay" else len(events)
        pauses = action.get("pauses", len(events)) if kind == "event_delay" else 0
        for i, event in enumerate(events[:limit]):
            if i and kind == "event_delay" and i <= pauses:
                await asyncio.sleep(action["seconds"])
            elif i == 1 and kind in ("error_after_events", "malformed_after_events", "reset_after_events") and action.get("seconds"):
                await asyncio.sleep(action["seconds"])  # the first event reaches the client on its own
            if self.closed or self.closed_by_server:
                return
            write(_chunk(event))
            if self._paused:
                await self._drain()
        if kind == "reset_after_events":
            await asyncio.sleep(0.005)  # let the events reach the peer before the reset discards buffers
            self.close(abort=True)
            return
        if kind == "malformed_after_events":
            if events[0][:1] == b"\x00":  # an event-stream frame whose checksum is wrong
                frame = events[-1]
                write(_chunk(frame[:-1] + bytes((frame[-1] ^ 1,))))
            else:
                # Half an event whose data is not JSON, then a clean end of the stream.
                name = b"event: content_block_delta\n" if events[0].startswith(b"event:") else b""
                write(_chunk(name + b'data: {"type": "content_block_delta", "index": 0, "delta": {\n\n'))
        if kind == "error_after_events":
            write(_chunk(_error_event(action.get("status", 529), events[0])))
        write(b"0\r\n\r\n")
        self._finish(keep_alive)

    def _finish(self, keep_alive: bool) -> None:
        self.server.counters["responses"] += 1
        if not keep_alive:
            self.close()

    async def _wait_closed(self) -> None:
        if self.closed:
            return
        self._closed_waiter = asyncio.get_running_loop().create_future()
        await self._closed_waiter

    async def _drain(self) -> None:
        if self._paused and not self.closed:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter

    def close(self, abort: bool = False) -> None:
        """Close from the server side: ``abort`` resets the TCP connection instead of a clean FIN."""
        if self.closed or self.closed_by_server or self.transport is None:
            return
        self.closed_by_server = True
        if abort:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                # Zero linger makes close() send an RST, which is what a crashed upstream looks like.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()
        else:
            self.transport.close()

    def _bad_request(self, message: str, status: int = 400) -> None:
        body = orjson.dumps(error_body(_OPENAI, ErrorKind.INVALID_REQUEST, message))
        self.transport.write(_head(Answer(status), len(body), False) + body)
        self.close()


def _head(answer: Answer, length: int | None, keep_alive: bool) -> bytes:
    status_line = _STATUS_LINES.get(answer.status) or b"HTTP/1.1 %d %s\r\n" % (answer.status, _reason(answer.status))
    parts = [status_line, b"content-type: ", answer.content_type, b"\r\n"]
    if length is None:
        parts.append(b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n")
    else:
        parts.append(b"content-length: %d\r\n" % length)
    for name, value in answer.headers:
        parts += (name, b": ", value, b"\r\n")
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def _cloud_route(path: bytes) -> tuple[tuple[str, ApiFormat, bytes] | None, str | None]:
    """(route, model named by the path) for Bedrock, Vertex AI and the token endpoint; (None, None) else."""
    if path == b"/token":
        return (TOKEN, _OPENAI, b"POST"), None
    bedrock = BEDROCK_PATH.match(path)
    if bedrock is not None:
        return (bedrock.group(2).decode(), _BEDROCK, b"POST"), unquote(bedrock.group(1).decode("latin-1"))
    vertex = VERTEX_PATH.match(path)
    if vertex is not None:
        fmt = _VERTEX if vertex.group(3) == b"anthropic" else ApiFormat.GEMINI
        return (vertex.group(5).decode(), fmt, b"POST"), unquote(vertex.group(4).decode("latin-1"))
    return None, None


def _asks_to_stream(request: Request) -> bool:
    if request.path.endswith((b":streamGenerateContent", b"/invoke-with-response-stream", b":streamRawPredict")):
        return True
    body = request.json()
    return isinstance(body, dict) and bool(body.get("stream"))


def _error_event(status: int, first_event: bytes) -> bytes:
    """The in-band error event a provider sends when a stream fails after its 200 (e.g. overloaded),
    in the format of the stream it breaks (told by that stream's first event)."""
    message = _DEFAULT_MESSAGES.get(status) or _reason(status).decode()
    kind = kind_for_status(status)
    if first_event[:1] == b"\x00":  # Bedrock's event stream: an exception frame
        from keystile.formats.bedrock import stream_error

        return stream_error(status, message)
    if first_event.startswith(b"event: response."):  # OpenAI Responses: an error event
        payload = {"type": "error", "code": kind.openai_code, "message": message, "param": None}
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
    if first_event.startswith(b"event:"):
        return b"event: error\ndata: " + orjson.dumps(error_body(_ANTHROPIC, kind, message)) + b"\n\n"
    if b'"candidates"' in first_event:  # Gemini
        return b"data: " + orjson.dumps(error_body(ApiFormat.GEMINI, kind, message, status=status)) + b"\r\n\r\n"
    return b"data: " + orjson.dumps(error_body(_OPENAI, kind, message)) + b"\n\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# ---------------------------------------------------------------------------------------
# Running it: in a background thread (tests) or as a process (tests, benchmark)


def new_event_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


class MockUpstreamThread:
    """A ``MockUpstream`` serving from its own event loop in a daemon thread."""

    def __init__(self, server: MockUpstream, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self.server = server
        self.loop = loop
        self.thread = thread

    @property
    def url(self) -> str:
        return self.server.url

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the server's loop and return its result (thread-safe state access)."""

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    def requests(self) -> list[dict]:
        return self.call(self.server.requests)

    def clear_requests(self) -> None:
        self.call(self.server.clear_requests)

    def set_faults(self, rules: list) -> None:
        self.call(self.server.set_faults, rules)

    def clear_faults(self) -> None:
        self.call(self.server.clear_faults)

    def stats(self) -> dict:
        return self.call(self.server.stats)

    def connections(self) -> list[dict]:
        return self.call(self.server.connections)

    def reset(self) -> None:
        self.call(self.server.reset)

    def set_token_lifetime(self, seconds: float) -> None:
        """How long the OAuth tokens the fake /token endpoint issues from now on live."""
        self.call(setattr, self.server.tokens, "lifetime", seconds)

    def trust_service_account(self, email: str, public_key: object) -> None:
        """Check the JWT assertions of ``email`` with ``public_key`` (a ``cryptography`` RSA public key)."""
        self.call(self.server.tokens.public_keys.__setitem__, email, public_key)

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def __enter__(self) -> MockUpstreamThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(
    *, port: int = 0, latency_ms: float = 0.0, record_limit: int = 10_000, coalesce_stream: bool = False
) -> tuple[str, MockUpstreamThread]:
    """Start a mock upstream on 127.0.0.1 in a background thread; returns (base URL, handle)."""
    server = MockUpstream(latency_ms=latency_ms, record_limit=record_limit, coalesce_stream=coalesce_stream)
    loop = new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start(port))
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name="keystile-mock-upstream", daemon=True)
    thread.start()
    ready.wait(10)
    if failure:
        raise failure[0]
    return server.url, MockUpstreamThread(server, loop, thread)


async def serve(host: str, port: int, latency_ms: float, record_limit: int, coalesce_stream: bool) -> None:
    server = MockUpstream(host=host, latency_ms=latency_ms, record_limit=record_limit, coalesce_stream=coalesce_stream)
    await server.start(port)
    print(f"listening on {server.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keystile.testing.upstream", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="fixed delay before every answer")
    parser.add_argument(
        "--record-limit", type=int, default=10_000, help="keep the last N requests for /_mock/requests; 0 records none"
    )
    parser.add_argument(
        "--coalesce-stream",
        action="store_true",
        help="write each undelayed SSE stream in one write (still one chunk per event); default one write per event",
    )
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve(args.host, args.port, args.latency_ms, args.record_limit, args.coalesce_stream))
    return 0


if __name__ == "__main__":
    sys.exit(main())
