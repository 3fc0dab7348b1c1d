"""AWS Bedrock's InvokeModel for Anthropic models: ``POST {api_base}/model/{id}/invoke`` and
``/invoke-with-response-stream``.

``api_base`` defaults to ``https://bedrock-runtime.{region}.amazonaws.com``; the model id may be
a foundation model (``anthropic.claude-…-v1:0``), a cross-region inference profile
(``us.anthropic.claude-…``, ``global.anthropic.claude-…``) or an inference-profile ARN, and is
percent-encoded into the path as the AWS SDKs do. The body is Messages in Bedrock's envelope
(``formats.bedrock``); the request's betas — the ``anthropic-beta`` header inside keystile — go
into ``anthropic_beta``, keeping only those Bedrock accepts (``providers.betas``) unless the
client spoke Bedrock itself (then its own list is forwarded untouched). Authentication: a Bedrock API key as
``Authorization: Bearer``, or SigV4 (``providers.cloud_auth``).
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import orjson

from keystile.apiformat import ApiFormat
from keystile.config.model import AwsCredentials, Deployment
from keystile.providers.base import BASE_HEADER_BLOCKS, Operation, PerDeployment, UpstreamCall, UpstreamResponse, configured_header_block
from keystile.providers.betas import BEDROCK_BETAS, accepted_betas
from keystile.providers.cloud_auth import SigV4Signer
from keystile.upstream.client import UpstreamClient, encode_headers

_CONTENT_TYPE = b"application/json"


class _Target:
    """What a Bedrock request needs from its deployment alone, worked out once."""

    __slots__ = ("urls", "host", "headers", "signer")

    def __init__(self, deployment: Deployment, signer: SigV4Signer | None) -> None:
        base = f"{deployment.api_base}/model/{quote(deployment.model, safe='')}"
        self.urls = {False: f"{base}/invoke", True: f"{base}/invoke-with-response-stream"}
        self.host = _authority(deployment.api_base or "")
        block = BASE_HEADER_BLOCKS[False] + configured_header_block(deployment)  # accept: application/json, stream or not
        if deployment.api_key:
            block += encode_headers([(b"authorization", b"Bearer " + deployment.api_key.encode())])
        self.signer = signer
        self.headers = block


class BedrockProvider:
    name = "bedrock"

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client
        self._signers: dict[tuple[AwsCredentials, str], SigV4Signer] = {}
        self._targets = PerDeployment(lambda deployment: _Target(deployment, self._signer(deployment)))

    def _signer(self, deployment: Deployment) -> SigV4Signer | None:
        """One signer (and credential lookup) per credentials and region, shared by the deployments using them."""
        if deployment.api_key:
            return None
        key = (deployment.aws or AwsCredentials(), deployment.region or "us-east-1")
        signer = self._signers.get(key)
        if signer is None:
            signer = self._signers[key] = SigV4Signer(*key)
        return signer

    def wire_format(self, deployment: Deployment, operation: Operation, client: ApiFormat) -> ApiFormat:
        return ApiFormat.BEDROCK

    def supports(self, operation: Operation, wire: ApiFormat) -> bool:
        return operation is Operation.GENERATE  # token counts are estimated locally

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        target = self._targets(call.deployment)
        url = target.urls[call.stream]
        body = call.body
        if call.client is not ApiFormat.BEDROCK:
            body = with_betas(body, call.client_headers.get(b"anthropic-beta"))
        headers = target.headers
        if target.signer is not None:
            headers += encode_headers(await target.signer.headers(url, target.host, _CONTENT_TYPE, body))
        return await self.client.request("POST", url, headers, body, timeouts=call.timeouts)


def with_betas(body: bytes, header: bytes | None) -> bytes:
    """``body`` (keystile's serialisation of a Bedrock request without ``anthropic_beta``) with
    the betas Bedrock accepts as its first field."""
    betas = accepted_betas(header, BEDROCK_BETAS)
    if not betas or body[:1] != b"{":
        return body
    field = b'{"anthropic_beta":' + orjson.dumps(betas)
    return field + b"}" if body.strip() == b"{}" else field + b"," + body[1:]


def _authority(url: str) -> str:
    """The ``host`` header the upstream client sends for ``url`` (the port only when not the scheme's default)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    authority = f"[{host}]" if ":" in host else host
    default = 443 if parts.scheme == "https" else 80
    if parts.port is not None and parts.port != default:
        authority = f"{authority}:{parts.port}"
    return authority

