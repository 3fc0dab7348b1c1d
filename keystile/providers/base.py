"""The one interface every provider adapter implements, and what flows through it.

A provider turns an ``UpstreamCall`` (a body already in the provider's wire format) into an
upstream request — URL, credential, headers — and returns the upstream's response as an
``UpstreamResponse``: status and headers now, body later, read whole or streamed. The
built-in ``mock`` provider implements the same interface without a socket.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Generic, Mapping, Protocol, TypeVar

from keystile.apiformat import ApiFormat
from keystile.config.model import Deployment, UpstreamSettings
from keystile.credentials import UpstreamCredential
from keystile.upstream.client import Timeouts, UpstreamClient, encode_headers
from keystile.upstream.tls import tls_context


class Operation(enum.Enum):
    """What a request asks for, whatever its format: the wire format decides the upstream path."""

    GENERATE = "generate"
    """A model answer: Messages, Chat Completions, Responses, generateContent."""
    COUNT_TOKENS = "count_tokens"
    EMBEDDINGS = "embeddings"


@dataclass(slots=True)
class UpstreamCall:
    deployment: Deployment
    operation: Operation
    wire: ApiFormat
    """The API format the body is in (for OpenAI-type deployments: Chat Completions or Responses)."""
    body: bytes
    stream: bool
    client_headers: Mapping[bytes, bytes]
    """The first value of each request header the pipeline reads (``inference.PIPELINE_HEADERS``)."""
    upstream_credential: UpstreamCredential | None
    timeouts: Timeouts
    query: bytes = b""
    """Query parameters for the upstream, from the client's through an allow-list (``?beta=true``)."""
    client: ApiFormat | None = None
    """The client's format: a Bedrock upstream keeps a Bedrock client's own ``anthropic_beta`` list."""


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

    def supports(self, operation: Operation, wire: ApiFormat) -> bool: ...

    async def send(self, call: UpstreamCall) -> UpstreamResponse: ...


def upstream_client(settings: UpstreamSettings) -> UpstreamClient:
    """The one client every provider shares: the configured size caps, the environment's
    proxies (``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``) and the system's CAs plus every
    configured bundle, all as settled when the configuration was read."""
    return UpstreamClient(
        ssl_context=tls_context(settings.ca_bundles),
        proxies=settings.proxies,
        max_header_bytes=settings.max_header_bytes,
        max_body_bytes=settings.max_body_bytes,
    )


def base_headers(stream: bool) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"application/json"),
        (b"accept", b"text/event-stream" if stream else b"application/json"),
        (b"accept-encoding", b"identity"),
        (b"user-agent", b"keystile"),
    ]


BASE_HEADER_BLOCKS = {stream: encode_headers(base_headers(stream)) for stream in (False, True)}
"""``base_headers`` encoded for the upstream client, by ``stream``."""


def configured_header_block(deployment: Deployment) -> bytes:
    """The extra headers the deployment's config adds to every upstream request, encoded."""
    return encode_headers((name.encode(), value.encode()) for name, value in deployment.headers)


T = TypeVar("T")


class PerDeployment(Generic[T]):
    """What a provider derives from a deployment's configuration alone (URLs, header blocks),
    worked out once per deployment instead of on every request.

    Entries are keyed by the deployment object itself (deployments are immutable and
    long-lived: the router's, and its pass-through copies); bounded like the router's copies.
    """

    __slots__ = ("_build", "_entries")

    def __init__(self, build: Callable[[Deployment], T]) -> None:
        self._build = build
        self._entries: dict[int, tuple[Deployment, T]] = {}

    def __call__(self, deployment: Deployment) -> T:
        entry = self._entries.get(id(deployment))
        if entry is not None and entry[0] is deployment:
            return entry[1]
        if len(self._entries) > 10_000:
            self._entries.clear()
        value = self._build(deployment)
        self._entries[id(deployment)] = (deployment, value)  # holding the deployment keeps its id unique
        return value
