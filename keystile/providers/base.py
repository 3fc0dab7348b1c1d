"""The one interface every provider adapter implements, and what flows through it.

A provider turns an ``UpstreamCall`` (a body already in the provider's wire format) into an
upstream request — URL, credential, headers — and returns the upstream's response as an
``UpstreamResponse``: status and headers now, body later, read whole or streamed. The
built-in ``mock`` provider implements the same interface without a socket.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import AsyncIterator, Protocol

from keystile.apiformat import ApiFormat
from keystile.config.model import Deployment
from keystile.credentials import UpstreamCredential
from keystile.upstream.client import Timeouts


class Operation(enum.Enum):
    MESSAGES = "messages"
    COUNT_TOKENS = "count_tokens"
    CHAT = "chat"
    EMBEDDINGS = "embeddings"


@dataclass(slots=True)
class UpstreamCall:
    deployment: Deployment
    operation: Operation
    body: bytes
    stream: bool
    client_headers: list[tuple[bytes, bytes]]
    upstream_credential: UpstreamCredential | None
    timeouts: Timeouts
    query: bytes = b""
    """The client's query string, forwarded to Anthropic upstreams (``?beta=true``)."""


class UpstreamResponse(Protocol):
    status: int
    headers: list[tuple[bytes, bytes]]

    def header(self, name: bytes) -> bytes | None: ...

    async def read(self) -> bytes: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Provider(Protocol):
    name: str

    def wire_format(self, deployment: Deployment, operation: Operation, client: ApiFormat) -> ApiFormat:
        """The format this deployment speaks for ``operation`` (the mock speaks the client's)."""
        ...

    def supports(self, operation: Operation) -> bool: ...

    async def send(self, call: UpstreamCall) -> UpstreamResponse: ...


def client_header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def base_headers(stream: bool) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"application/json"),
        (b"accept", b"text/event-stream" if stream else b"application/json"),
        (b"accept-encoding", b"identity"),
        (b"user-agent", b"keystile"),
    ]
