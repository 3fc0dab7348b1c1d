"""What can go wrong when keystile calls an upstream, as one small exception tree.

    UpstreamError                  base: anything the upstream client raises on purpose
     ├── UpstreamConnectError      DNS failure, connection refused, TLS handshake/verification failure
     ├── UpstreamTimeout           .phase = "connect" | "first_byte" | "idle"
     ├── UpstreamDisconnected      connection reset or closed before the response (or its body) was complete
     ├── UpstreamProtocolError     malformed HTTP from the upstream (a compressed body that does not decompress included)
     └── UpstreamTooLarge          .part = "headers" | "body": more than the client accepts (its size caps)

The router maps these to retries/cooldowns and the server maps them to the client's API
format (typically 502 for connect/disconnect/protocol errors, 504 for timeouts). Messages
name the upstream as host:port only, never the path or query (a Gemini-style URL can
carry an API key in its query string).
"""

from __future__ import annotations

from typing import Literal

TimeoutPhase = Literal["connect", "first_byte", "idle"]
OversizedPart = Literal["headers", "body"]


class UpstreamError(Exception):
    """Base class of every error the upstream client raises on purpose."""


class UpstreamConnectError(UpstreamError):
    """The connection could not be established: DNS, refused, unreachable, TLS handshake."""


class UpstreamTimeout(UpstreamError):
    """A timeout of `Timeouts` expired; `phase` says which one."""

    def __init__(self, phase: TimeoutPhase, message: str) -> None:
        super().__init__(message)
        self.phase: TimeoutPhase = phase


class UpstreamDisconnected(UpstreamError):
    """The upstream reset or closed the connection before the response was complete."""


class UpstreamProtocolError(UpstreamError):
    """The upstream sent something that is not valid HTTP/1.1."""


class UpstreamTooLarge(UpstreamError):
    """The response head, or a body read whole (after decompression), is larger than the
    client's cap (`max_header_bytes` / `max_body_bytes`); the connection is dropped."""

    def __init__(self, part: OversizedPart, limit: int) -> None:
        super().__init__(f"the upstream's response {part} exceed the {limit}-byte limit")
        self.part: OversizedPart = part
        self.limit = limit


class StaleConnection(UpstreamDisconnected):
    """A reused keep-alive connection turned out to be closed before any response byte.

    Internal: the client retries such a request once on a fresh connection, so callers
    only ever see it as an `UpstreamDisconnected` if that cannot happen.
    """
