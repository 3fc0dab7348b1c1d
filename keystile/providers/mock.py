"""The built-in mock provider: deterministic answers with usage, streaming or not, no network.

A first-class provider like the others — it is what ``make run``'s default config serves,
so a newcomer gets an answer without credentials or internet. It speaks the client's own
format (Messages or Chat; every other client — Responses, Gemini, Bedrock, Vertex — is
answered in Messages through the hub) unless the deployment sets ``format`` (``anthropic``,
``openai``, ``gemini``, ``bedrock``, ``vertex``: answer as that upstream would), and shares its
replies with the mock upstream HTTP server (``keystile.testing.upstream``) through ``mock_replies``.
"""

from __future__ import annotations

import itertools
from typing import AsyncIterator

import orjson

from keystile.apiformat import ApiFormat
from keystile.config.model import Deployment
from keystile.errors import ErrorKind, GatewayError
from keystile.providers import mock_replies, mock_replies_gemini
from keystile.providers.base import Operation, UpstreamCall

_SSE = b"text/event-stream"
_JSON = b"application/json"
_EVENTSTREAM = b"application/vnd.amazon.eventstream"
_request_ids = itertools.count(1)
_NATIVE = (ApiFormat.ANTHROPIC, ApiFormat.OPENAI)
_SPOKEN = frozenset({ApiFormat.ANTHROPIC, ApiFormat.OPENAI, ApiFormat.GEMINI, ApiFormat.BEDROCK, ApiFormat.VERTEX})


class MockResponse:
    """An in-memory response with the ``UpstreamResponse`` shape."""

    def __init__(self, status: int, content_type: bytes, chunks: list[bytes]) -> None:
        self.status = status
        self.headers = [(b"content-type", content_type), (b"request-id", b"req_keystile_mock_%d" % next(_request_ids))]
        self._chunks = chunks

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def read(self) -> bytes:
        return b"".join(self._chunks)

    async def _iterate(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def aclose(self) -> None:
        return None


class MockProvider:
    name = "mock"

    def wire_format(self, deployment: Deployment, operation: Operation, client: ApiFormat) -> ApiFormat:
        if operation is Operation.EMBEDDINGS:
            return ApiFormat.OPENAI
        if operation is Operation.COUNT_TOKENS:
            return ApiFormat.ANTHROPIC
        if deployment.wire_format is not None:
            return ApiFormat(deployment.wire_format)
        # Responses and Gemini clients are answered in Messages, translated like any other upstream's.
        return client if client in _NATIVE else ApiFormat.ANTHROPIC

    def supports(self, operation: Operation, wire: ApiFormat) -> bool:
        return wire in _SPOKEN

    async def send(self, call: UpstreamCall) -> MockResponse:
        try:
            body = orjson.loads(call.body)
        except orjson.JSONDecodeError as exc:  # the gateway only ever sends JSON it produced
            raise GatewayError(ErrorKind.INTERNAL, f"mock provider received invalid JSON: {exc}") from None
        operation = call.operation
        if operation is Operation.EMBEDDINGS:
            return MockResponse(200, _JSON, [orjson.dumps(mock_replies.openai_embeddings(body))])
        if operation is Operation.COUNT_TOKENS:
            return MockResponse(200, _JSON, [orjson.dumps(mock_replies.anthropic_count_tokens(body))])
        wire = call.wire
        model = call.deployment.model
        if wire is ApiFormat.GEMINI:
            if call.stream:
                return MockResponse(200, _SSE, mock_replies_gemini.gemini_stream(body, model, auto_tools=False))
            return MockResponse(200, _JSON, [orjson.dumps(mock_replies_gemini.gemini_response(body, model, auto_tools=False))])
        if wire is ApiFormat.BEDROCK or wire is ApiFormat.VERTEX:  # Messages without the model in the body
            body = {**body, "model": model}
            if call.stream and wire is ApiFormat.BEDROCK:
                return MockResponse(200, _EVENTSTREAM, mock_replies.bedrock_frames(mock_replies.anthropic_stream(body, auto_tools=False)))
        anthropic = wire is not ApiFormat.OPENAI
        # Tools are called only when tool_choice forces one: a demo client such as Claude Code
        # sends many tools with every turn and should get an answer, not placeholder calls.
        if call.stream:
            stream = mock_replies.anthropic_stream if anthropic else mock_replies.openai_stream
            return MockResponse(200, _SSE, stream(body, auto_tools=False))
        reply = (mock_replies.anthropic_message if anthropic else mock_replies.openai_completion)(body, auto_tools=False)
        return MockResponse(200, _JSON, [orjson.dumps(reply)])
