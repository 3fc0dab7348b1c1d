"""Anthropic's Messages API: ``/v1/messages`` and ``/v1/messages/count_tokens``.

``anthropic-version`` and ``anthropic-beta`` are forwarded verbatim. The credential is the
deployment's key, unless the deployment opted in to ``forward_client_credentials`` and the
client brought its own Anthropic credential: an OAuth token then goes as
``Authorization: Bearer`` with ``oauth-2025-04-20`` merged into ``anthropic-beta``.
"""

from __future__ import annotations

from keystile.apiformat import ApiFormat
from keystile.config.model import Deployment
from keystile.credentials import UpstreamCredentialKind
from keystile.providers.base import (
    BASE_HEADER_BLOCKS,
    Operation,
    PerDeployment,
    UpstreamCall,
    UpstreamResponse,
    configured_header_block,
)
from keystile.upstream.client import UpstreamClient, encode_headers

DEFAULT_VERSION = b"2023-06-01"
OAUTH_BETA = b"oauth-2025-04-20"
_PATHS = {Operation.GENERATE: "/v1/messages", Operation.COUNT_TOKENS: "/v1/messages/count_tokens"}


def merge_beta(existing: bytes | None, flag: bytes) -> bytes:
    if not existing:
        return flag
    flags = [f.strip() for f in existing.split(b",") if f.strip()]
    return existing if flag in flags else b",".join([*flags, flag])


class _Target:
    """The parts of an Anthropic request that depend on the deployment alone, encoded once."""

    __slots__ = ("urls", "own_key", "configured")

    def __init__(self, deployment: Deployment) -> None:
        self.urls = {operation: f"{deployment.api_base}{path}" for operation, path in _PATHS.items()}
        self.own_key = encode_headers([(b"x-api-key", deployment.api_key.encode())]) if deployment.api_key else b""
        self.configured = configured_header_block(deployment)


def anthropic_headers(call: UpstreamCall, target: _Target) -> bytes:
    """The upstream header block: base headers, ``anthropic-version``, the credential,
    ``anthropic-beta``, then the deployment's own extra headers — in that order."""
    version = call.client_headers.get(b"anthropic-version") or DEFAULT_VERSION
    beta = call.client_headers.get(b"anthropic-beta")
    deployment = call.deployment
    credential = call.upstream_credential if deployment.forward_client_credentials else None
    if credential is not None and credential.kind is UpstreamCredentialKind.ANTHROPIC_OAUTH:
        auth = encode_headers([(b"authorization", b"Bearer " + credential.value.encode())])
        beta = merge_beta(beta, OAUTH_BETA)
    elif credential is not None:
        auth = encode_headers([(b"x-api-key", credential.value.encode())])
    else:
        auth = target.own_key
    return b"".join(
        (
            BASE_HEADER_BLOCKS[call.stream],
            b"anthropic-version: ",
            version,
            b"\r\n",
            auth,
            b"anthropic-beta: " + beta + b"\r\n" if beta else b"",
            target.configured,
        )
    )


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client
        self._targets = PerDeployment(_Target)

    def wire_format(self, deployment: Deployment, operation: Operation, client: ApiFormat) -> ApiFormat:
        return ApiFormat.ANTHROPIC

    def supports(self, operation: Operation, wire: ApiFormat) -> bool:
        return operation in _PATHS

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        target = self._targets(call.deployment)
        url = target.urls[call.operation]
        if call.query:
            url += "?" + call.query.decode("latin-1")
        return await self.client.request("POST", url, anthropic_headers(call, target), call.body, timeouts=call.timeouts)
