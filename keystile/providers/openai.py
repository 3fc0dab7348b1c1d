"""OpenAI's Chat Completions and Embeddings APIs, and every server that speaks them.

``api_base`` is the OpenAI-style root that ``/chat/completions`` is appended to
(``https://api.openai.com/v1``, ``http://127.0.0.1:11434/v1`` for Ollama, …). A client's
Anthropic credential is never sent here.
"""

from __future__ import annotations

from keystile.apiformat import ApiFormat
from keystile.config.model import Deployment
from keystile.providers.base import Operation, UpstreamCall, UpstreamResponse, base_headers
from keystile.upstream.client import UpstreamClient

_PATHS = {Operation.CHAT: "/chat/completions", Operation.EMBEDDINGS: "/embeddings"}


class OpenAIProvider:
    name = "openai"

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client

    def wire_format(self, deployment: Deployment, operation: Operation, client: ApiFormat) -> ApiFormat:
        return ApiFormat.OPENAI

    def supports(self, operation: Operation) -> bool:
        return operation in _PATHS

    def url(self, call: UpstreamCall) -> str:
        return f"{call.deployment.api_base}{_PATHS[call.operation]}"

    def auth_headers(self, deployment: Deployment) -> list[tuple[bytes, bytes]]:
        if deployment.api_key:
            return [(b"authorization", b"Bearer " + deployment.api_key.encode())]
        return []

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        headers = base_headers(call.stream) + self.auth_headers(call.deployment)
        headers.extend((name.encode(), value.encode()) for name, value in call.deployment.headers)
        return await self.client.request("POST", self.url(call), headers, call.body, timeouts=call.timeouts)


class AzureOpenAIProvider(OpenAIProvider):
    """Azure OpenAI: the deployment name is in the path, the key in ``api-key``, the version in the query."""

    name = "azure"

    def url(self, call: UpstreamCall) -> str:
        deployment = call.deployment
        return (
            f"{deployment.api_base}/openai/deployments/{deployment.model}{_PATHS[call.operation]}"
            f"?api-version={deployment.api_version}"
        )

    def auth_headers(self, deployment: Deployment) -> list[tuple[bytes, bytes]]:
        if deployment.api_key:
            return [(b"api-key", deployment.api_key.encode())]
        return []
