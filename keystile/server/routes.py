"""Which inference route a path is: its client format, its operation, and what the path itself says.

Most routes are fixed paths (a dict lookup). Azure OpenAI and Gemini name the model in the
path (``/openai/deployments/{deployment}/chat/completions``,
``/v1beta/models/{model}:streamGenerateContent``); those are matched by pattern only when
the fixed lookup misses, so the common routes cost one dict lookup.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from keystile.apiformat import ApiFormat
from keystile.providers.base import Operation
from keystile.server.inference import Endpoint

FIXED: dict[str, Endpoint] = {
    "/v1/messages": Endpoint(ApiFormat.ANTHROPIC, Operation.GENERATE),
    "/v1/messages/count_tokens": Endpoint(ApiFormat.ANTHROPIC, Operation.COUNT_TOKENS),
    "/v1/chat/completions": Endpoint(ApiFormat.OPENAI, Operation.GENERATE),
    "/chat/completions": Endpoint(ApiFormat.OPENAI, Operation.GENERATE),
    "/v1/embeddings": Endpoint(ApiFormat.OPENAI, Operation.EMBEDDINGS),
    "/embeddings": Endpoint(ApiFormat.OPENAI, Operation.EMBEDDINGS),
    "/v1/responses": Endpoint(ApiFormat.RESPONSES, Operation.GENERATE),
    "/responses": Endpoint(ApiFormat.RESPONSES, Operation.GENERATE),
}

# /openai/deployments/{deployment}/chat/completions?api-version=… (openai.AzureOpenAI)
_AZURE = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|embeddings)$")
# /v1beta/models/{model}:generateContent, also Vertex style /v1beta1/publishers/google/models/…,
# behind any path prefix a client's base URL adds (/gw/gemini/v1beta/…).
_GEMINI = re.compile(
    r"^(?:/.*)?/(?:v1|v1beta|v1beta1|v1alpha)/(?:publishers/google/)?models/([^/:]+):"
    r"(generateContent|streamGenerateContent|countTokens)$"
)
_GEMINI_METHODS = {
    "generateContent": (Operation.GENERATE, False),
    "streamGenerateContent": (Operation.GENERATE, True),
    "countTokens": (Operation.COUNT_TOKENS, False),
}


TEMPLATED = (
    "/openai/deployments/{deployment}/chat/completions",
    "/openai/deployments/{deployment}/embeddings",
    "/v1beta/models/{model}:generateContent",
    "/v1beta/models/{model}:streamGenerateContent",
    "/v1beta/models/{model}:countTokens",
)
"""The pattern routes as the OpenAPI document names them (Gemini's also answer under /v1/, /v1beta1/ …)."""


def match_endpoint(path: str) -> Endpoint | None:
    endpoint = FIXED.get(path)
    if endpoint is not None:
        return endpoint
    if path.startswith("/openai/deployments/"):
        match = _AZURE.match(path)
        if match is not None:
            operation = Operation.GENERATE if match.group(2) == "chat/completions" else Operation.EMBEDDINGS
            return Endpoint(ApiFormat.OPENAI, operation, model=unquote(match.group(1)))
    elif ":" in path:
        match = _GEMINI.match(path)
        if match is not None:
            operation, stream = _GEMINI_METHODS[match.group(2)]
            return Endpoint(ApiFormat.GEMINI, operation, model=unquote(match.group(1)), stream=stream)
    return None
