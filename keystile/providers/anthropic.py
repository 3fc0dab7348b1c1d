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
from keystile.providers.base import Operation, UpstreamCall, UpstreamResponse, base_headers, client_header
from keystile.upstream.client import UpstreamClient

DEFAULT_VERSION = b"2023-06-01"
OAUTH_BETA = b"oauth-2025-04-20"
_PATHS = {Operation.MESSAGES: "/v1/messages", Operation.COUNT_TOKENS: "/v1/messages/count_tokens"}


def merge_beta(existing: bytes | None, flag: bytes) -> bytes:
    if not existing:
        return flag
    flags = [f.strip() for f in existing.split(b",") if f.strip()]
    return existing if flag in flags else b",".join([*flags, flag])


def anthropic_headers(call: UpstreamCall) -> list[tuple[bytes, bytes]]:
    headers = base_headers(call.stream)
    version = client_header(call.client_headers, b"anthropic-version") or DEFAULT_VERSION
    beta = client_header(call.client_headers, b"anthropic-beta")
    headers.append((b"anthropic-version", version))

    deployment = call.deployment
    credential = call.upstream_credential if deployment.forward_client_credentials else None
    if credential is not None and credential.kind is UpstreamCredentialKind.ANTHROPIC_OAUTH:
        headers.append((b"authorization", b"Bearer " + credential.value.encode()))
        beta = merge_beta(beta, OAUTH_BETA)
    elif credential is not None:
        headers.append((b"x-api-key", credential.value.encode()))
    elif deployment.api_key:
        headers.append((b"x-api-key", deployment.api_key.encode()))
    if beta:
        headers.append((b"anthropic-beta", beta))
    headers.extend((name.encode(), value.encode()) for name, value in deployment.headers)
    return headers


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client

    def wire_format(self, deployment: Deployment, operation: Operation, client: ApiFormat) -> ApiFormat:
        return ApiFormat.ANTHROPIC

    def supports(self, operation: Operation) -> bool:
        return operation in _PATHS

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        url = f"{call.deployment.api_base}{_PATHS[call.operation]}"
        if call.query:
            url += "?" + call.query.decode("latin-1")
        return await self.client.request("POST", url, anthropic_headers(call), call.body, timeouts=call.timeouts)
