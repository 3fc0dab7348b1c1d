"""OpenAI's Chat Completions, Responses and Embeddings APIs, and every server that speaks them.

``api_base`` is the OpenAI-style root that ``/chat/completions`` or ``/responses`` is
appended to (``https://api.openai.com/v1``, ``http://127.0.0.1:11434/v1`` for Ollama, …).
A deployment's ``wire_api`` says which generation API it has: ``chat`` (most compatible
servers), ``responses`` (every client is translated to Responses), or ``both`` (Responses
clients go to ``/responses``, everyone else to ``/chat/completions``). A client's Anthropic
credential is never sent here.
"""

from __future__ import annotations

from keystile.apiformat import ApiFormat
from keystile.config.model import Deployment
from keystile.providers.base import BASE_HEADER_BLOCKS, Operation, PerDeployment, UpstreamCall, UpstreamResponse, configured_header_block
from keystile.upstream.client import UpstreamClient, encode_headers

_PATHS = {
    (Operation.GENERATE, ApiFormat.OPENAI): "/chat/completions",
    (Operation.GENERATE, ApiFormat.RESPONSES): "/responses",
    (Operation.EMBEDDINGS, ApiFormat.OPENAI): "/embeddings",
}


class OpenAIProvider:
    name = "openai"

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client
        # Nothing of the client's goes upstream: URL and header block depend on the deployment alone.
        self._urls = PerDeployment(lambda deployment: {route: self.url(deployment, *route) for route in _PATHS})
        self._header_blocks = PerDeployment(
            lambda deployment: {stream: self.header_block(deployment, stream) for stream in (False, True)}
        )

    def wire_format(self, deployment: Deployment, operation: Operation, client: ApiFormat) -> ApiFormat:
        if operation is Operation.GENERATE:
            api = deployment.wire_api
            if api == "responses" or (api == "both" and client is ApiFormat.RESPONSES):
                return ApiFormat.RESPONSES
        return ApiFormat.OPENAI

    def supports(self, operation: Operation, wire: ApiFormat) -> bool:
        return (operation, wire) in _PATHS

    def url(self, deployment: Deployment, operation: Operation, wire: ApiFormat) -> str:
        return f"{deployment.api_base}{_PATHS[operation, wire]}"

    def auth_headers(self, deployment: Deployment) -> list[tuple[bytes, bytes]]:
        if deployment.api_key:
            return [(b"authorization", b"Bearer " + deployment.api_key.encode())]
        return []

    def header_block(self, deployment: Deployment, stream: bool) -> bytes:
        return BASE_HEADER_BLOCKS[stream] + encode_headers(self.auth_headers(deployment)) + configured_header_block(deployment)

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        deployment = call.deployment
        url = self._urls(deployment)[call.operation, call.wire]
        headers = self._header_blocks(deployment)[call.stream]
        return await self.client.request("POST", url, headers, call.body, timeouts=call.timeouts)


class AzureOpenAIProvider(OpenAIProvider):
    """Azure OpenAI: the deployment name is in the path, the key in ``api-key``, the version in the query."""

    name = "azure"

    def url(self, deployment: Deployment, operation: Operation, wire: ApiFormat) -> str:
        if wire is ApiFormat.RESPONSES:  # not per deployment: the deployment is named in the body
            return f"{deployment.api_base}/openai/responses?api-version={deployment.api_version}"
        return (
            f"{deployment.api_base}/openai/deployments/{deployment.model}{_PATHS[operation, wire]}"
            f"?api-version={deployment.api_version}"
        )

    def auth_headers(self, deployment: Deployment) -> list[tuple[bytes, bytes]]:
        if deployment.api_key:
            return [(b"api-key", deployment.api_key.encode())]
        return []
