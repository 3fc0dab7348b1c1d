"""Google AI Studio's Gemini API: ``{api_base}/v1beta/models/{model}:generateContent``,
``:streamGenerateContent?alt=sse`` and ``:countTokens``, with the key in ``x-goog-api-key``.

``api_base`` defaults to ``https://generativelanguage.googleapis.com``; the key to
``GEMINI_API_KEY``, then ``GOOGLE_API_KEY``. Bodies are Gemini's (``formats.gemini``): every
other client format is translated through the Messages hub.
"""

from __future__ import annotations

from urllib.parse import quote

from keystile.apiformat import ApiFormat
from keystile.config.model import Deployment
from keystile.providers.base import BASE_HEADER_BLOCKS, Operation, PerDeployment, UpstreamCall, UpstreamResponse, configured_header_block
from keystile.upstream.client import UpstreamClient, encode_headers

# (operation, stream) → the method after the model, as Google's APIs name it
GEMINI_METHODS = {
    (Operation.GENERATE, False): ":generateContent",
    (Operation.GENERATE, True): ":streamGenerateContent?alt=sse",
    (Operation.COUNT_TOKENS, False): ":countTokens",
}


def gemini_urls(models_url: str, model: str) -> dict[tuple[Operation, bool], str]:
    """Each route of one Gemini model under ``models_url`` (``…/v1beta/models``)."""
    base = f"{models_url}/{quote(model, safe='')}"
    return {route: base + method for route, method in GEMINI_METHODS.items()}


class _Target:
    __slots__ = ("urls", "headers")

    def __init__(self, deployment: Deployment) -> None:
        self.urls = gemini_urls(f"{deployment.api_base}/v1beta/models", deployment.model)
        key = encode_headers([(b"x-goog-api-key", deployment.api_key.encode())]) if deployment.api_key else b""
        self.headers = {stream: BASE_HEADER_BLOCKS[stream] + key + configured_header_block(deployment) for stream in (False, True)}


class GeminiProvider:
    name = "gemini"

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client
        self._targets = PerDeployment(_Target)

    def wire_format(self, deployment: Deployment, operation: Operation, client: ApiFormat) -> ApiFormat:
        return ApiFormat.GEMINI

    def supports(self, operation: Operation, wire: ApiFormat) -> bool:
        return operation is not Operation.EMBEDDINGS

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        target = self._targets(call.deployment)
        url = target.urls[call.operation, call.stream]
        return await self.client.request("POST", url, target.headers[call.stream], call.body, timeouts=call.timeouts)
