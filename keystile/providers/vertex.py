"""Google Vertex AI: Claude through Anthropic's publisher and Gemini through Google's.

    {root}/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model}:rawPredict
                                                                          …:streamRawPredict
                                                      publishers/anthropic/models/count-tokens:rawPredict
                                                      publishers/google/models/{model}:generateContent
                                                                          …:streamGenerateContent?alt=sse, …:countTokens

``root`` is ``https://{location}-aiplatform.googleapis.com`` (``https://aiplatform.googleapis.com``
for the ``global`` location) unless ``api_base`` says otherwise. A model whose id names Claude
speaks ``formats.vertex`` (Messages in Vertex's envelope, ``anthropic-version`` and
``anthropic-beta`` forwarded as headers — another client's betas only where Vertex accepts
them); any other speaks Gemini. Authentication: a Google
OAuth token from Application Default Credentials or a service-account file
(``providers.cloud_auth.GoogleToken``, one per credentials source, refreshed ahead of expiry),
or an API key (``x-goog-api-key``) when the deployment has one.
"""

from __future__ import annotations

from urllib.parse import quote

from keystile.apiformat import ApiFormat
from keystile.config.clouds import is_claude
from keystile.config.model import Deployment
from keystile.providers.base import BASE_HEADER_BLOCKS, Operation, PerDeployment, UpstreamCall, UpstreamResponse, configured_header_block
from keystile.providers.betas import VERTEX_BETAS, accepted_betas
from keystile.providers.cloud_auth import GoogleToken
from keystile.providers.gemini import gemini_urls
from keystile.upstream.client import UpstreamClient, encode_headers



class _Target:
    __slots__ = ("wire", "urls", "headers", "token")

    def __init__(self, deployment: Deployment, token: GoogleToken | None) -> None:
        vertex = deployment.vertex
        assert vertex is not None, "a vertex_ai deployment has its project and location"
        location = f"{deployment.api_base}/v1/projects/{vertex.project}/locations/{vertex.location}"
        self.wire = ApiFormat.VERTEX if is_claude(deployment.model) else ApiFormat.GEMINI
        if self.wire is ApiFormat.VERTEX:
            model = f"{location}/publishers/anthropic/models/{quote(deployment.model, safe='@')}"
            self.urls = {
                (Operation.GENERATE, False): f"{model}:rawPredict",
                (Operation.GENERATE, True): f"{model}:streamRawPredict",
                (Operation.COUNT_TOKENS, False): f"{location}/publishers/anthropic/models/count-tokens:rawPredict",
            }
        else:
            self.urls = gemini_urls(f"{location}/publishers/google/models", deployment.model)
        key = encode_headers([(b"x-goog-api-key", deployment.api_key.encode())]) if deployment.api_key else b""
        self.headers = {stream: BASE_HEADER_BLOCKS[stream] + key + configured_header_block(deployment) for stream in (False, True)}
        self.token = None if deployment.api_key else token


class VertexProvider:
    name = "vertex_ai"

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client
        self._tokens: dict[str | None, GoogleToken] = {}
        self._targets = PerDeployment(lambda deployment: _Target(deployment, self._token(deployment)))

    def _token(self, deployment: Deployment) -> GoogleToken | None:
        if deployment.api_key or deployment.vertex is None:
            return None
        spec = deployment.vertex.credentials
        token = self._tokens.get(spec)
        if token is None:
            token = self._tokens[spec] = GoogleToken(spec)
        return token

    def wire_format(self, deployment: Deployment, operation: Operation, client: ApiFormat) -> ApiFormat:
        return ApiFormat.VERTEX if is_claude(deployment.model) else ApiFormat.GEMINI

    def supports(self, operation: Operation, wire: ApiFormat) -> bool:
        return operation is not Operation.EMBEDDINGS

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        target = self._targets(call.deployment)
        url = target.urls[call.operation, call.stream]
        headers = target.headers[call.stream]
        if target.token is not None:
            headers += await target.token.header()
        if target.wire is ApiFormat.VERTEX:
            headers += anthropic_headers(call)
        return await self.client.request("POST", url, headers, call.body, timeouts=call.timeouts)


def anthropic_headers(call: UpstreamCall) -> bytes:
    """``anthropic-version`` and ``anthropic-beta`` as a Vertex client sent them; another client's
    betas only where Vertex accepts them (``providers.betas``)."""
    out = []
    version = call.client_headers.get(b"anthropic-version")
    if version:
        out.append((b"anthropic-version", version))
    beta = call.client_headers.get(b"anthropic-beta")
    if beta and call.client is not ApiFormat.VERTEX:
        beta = ",".join(accepted_betas(beta, VERTEX_BETAS)).encode()
    if beta:
        out.append((b"anthropic-beta", beta))
    return encode_headers(out)
