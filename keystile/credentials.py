"""Who is calling: a pure function from request headers to gateway-key candidates.

This is the stage keystile was born to get right. A client may carry several credentials
at once (Claude Desktop's gateway mode sends its Anthropic OAuth token in ``Authorization``
and the gateway key in ``x-api-key``); a value that is recognisably a provider credential is
never taken as the gateway key but kept aside as the client's upstream credential, and the
remaining values are candidates, in precedence order, for ``auth.authenticate`` to try.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable, Mapping

# Precedence order of the headers that may carry a gateway key (DESIGN.md, "Credential resolution").
CREDENTIAL_HEADERS: tuple[str, ...] = (
    "x-keystile-key",
    "x-litellm-api-key",
    "authorization",
    "api-key",
    "x-api-key",
    "x-goog-api-key",
)
_HEADER_NAMES = tuple((name.encode(), name) for name in CREDENTIAL_HEADERS)
CREDENTIAL_HEADER_NAMES = frozenset(raw for raw, _ in _HEADER_NAMES)
"""The same names as ASGI header names (lowercase bytes)."""
QUERY_KEY_SOURCE = "?key="


class UpstreamCredentialKind(enum.Enum):
    ANTHROPIC_OAUTH = "anthropic_oauth"
    ANTHROPIC_API_KEY = "anthropic_api_key"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A value that may be a gateway key, and the header it came from."""

    source: str
    value: str


@dataclass(frozen=True, slots=True)
class UpstreamCredential:
    """A provider credential the client brought; forwarded only where a deployment allows it."""

    kind: UpstreamCredentialKind
    value: str
    source: str

    def __repr__(self) -> str:  # never print the secret, even in a debugger or traceback
        return f"UpstreamCredential({self.kind.value}, {mask(self.value)}, from {self.source})"


@dataclass(frozen=True, slots=True)
class Credentials:
    candidates: tuple[Candidate, ...]
    upstream: UpstreamCredential | None
    examined: tuple[str, ...]
    """Names of the credential headers that were present, in precedence order (for 401 messages)."""


_NOTHING = Credentials((), None, ())


def upstream_credential_kind(value: str) -> UpstreamCredentialKind | None:
    """Recognise provider credentials that must never be mistaken for a gateway key."""
    if value.startswith("sk-ant-oat"):
        return UpstreamCredentialKind.ANTHROPIC_OAUTH
    if value.startswith("sk-ant-api"):
        return UpstreamCredentialKind.ANTHROPIC_API_KEY
    return None


def bearer_value(header_value: str) -> str | None:
    """The credential in an ``Authorization`` value.

    ``Bearer`` is matched case-insensitively and only the scheme is removed (with any
    spaces after it). A bare token with no scheme is accepted as-is, since some tools send
    one; another scheme (``Basic …``) carries no gateway key.
    """
    value = header_value.strip()
    if value[:7].lower() == "bearer " or value[:7].lower() == "bearer\t":
        return value[7:].strip() or None
    if value.lower() == "bearer":
        return None
    if " " in value or "\t" in value:
        return None
    return value or None


# Headers a user adds by hand (ANTHROPIC_CUSTOM_HEADERS …). LiteLLM's own Claude Code docs write
# ``x-litellm-api-key: Bearer sk-…`` and LiteLLM accepts it with or without the scheme.
_CUSTOM_HEADERS = frozenset({"x-keystile-key", "x-litellm-api-key"})


def custom_header_value(header_value: str) -> str | None:
    """The key in a custom key header: the value itself, or what follows ``Bearer`` (any case)."""
    value = header_value.strip()
    if value[:7].lower() in ("bearer ", "bearer\t"):
        value = value[7:].strip()
    elif value.lower() == "bearer":
        return None
    return value or None


def resolve_credentials(
    headers: Iterable[tuple[bytes, bytes]],
    query_key: str | None = None,
) -> Credentials:
    """Sort the credential-bearing headers of a request into candidates and upstream credential.

    ``headers`` are ASGI-style ``(lowercase name, value)`` byte pairs. ``query_key`` is the
    ``key`` query parameter of Gemini-style routes; it ranks after every header.
    """
    found: dict[bytes, bytes] = {}
    names = CREDENTIAL_HEADER_NAMES
    for name, value in headers:
        if name in names and name not in found:  # ASGI header names are lowercase bytes
            found[name] = value
    return credentials_from(found, query_key)


def credentials_from(found: Mapping[bytes, bytes], query_key: str | None = None) -> Credentials:
    """``resolve_credentials`` for headers already collected: the first value of each header by name.

    Names that are not credential headers are ignored, so the inference handler can pass the
    one dict it gathers every header it needs into, in a single pass over the request.
    """
    candidates: list[Candidate] = []
    upstream: UpstreamCredential | None = None
    examined: list[str] = []
    for raw_name, name in _HEADER_NAMES:
        raw_value = found.get(raw_name)
        if raw_value is None:
            continue
        raw = raw_value.decode("latin-1")
        examined.append(name)
        if name == "authorization":
            value = bearer_value(raw)
        elif name in _CUSTOM_HEADERS:
            value = custom_header_value(raw)
        else:
            value = raw.strip()
        if not value:
            continue
        kind = upstream_credential_kind(value)
        if kind is not None:
            if upstream is None:
                upstream = UpstreamCredential(kind, value, name)
            continue
        candidates.append(Candidate(name, value))

    if query_key:
        examined.append(QUERY_KEY_SOURCE)
        kind = upstream_credential_kind(query_key)
        if kind is None:
            candidates.append(Candidate(QUERY_KEY_SOURCE, query_key))
        elif upstream is None:
            upstream = UpstreamCredential(kind, query_key, QUERY_KEY_SOURCE)

    if not examined:
        return _NOTHING
    return Credentials(tuple(candidates), upstream, tuple(examined))


def mask(value: str) -> str:
    """Show a secret the way error messages and listings may: ``sk-ks-…a1b2``.

    A short value keeps a quarter of its characters at each end (``wrong-key`` → ``wr…ey``), so
    whoever sent it can recognise it; below four characters only ``…`` is shown.
    """
    if len(value) < 12:
        keep = len(value) // 4
        return f"{value[:keep]}…{value[-keep:]}" if keep else "…"
    head = value[:6] if value.startswith("sk-") else value[:3]
    return f"{head}…{value[-4:]}"
