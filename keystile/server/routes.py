"""Which inference route a path is: its client format, its operation, and what the path itself says.

Most routes are fixed paths (a dict lookup). Azure OpenAI, Gemini, Bedrock and Vertex name the
model in the path (``/openai/deployments/{deployment}/chat/completions``,
``/v1beta/models/{model}:streamGenerateContent``, ``/model/{id}/invoke-with-response-stream``,
``…/publishers/anthropic/models/{model}:streamRawPredict``); those are matched by pattern only
when the fixed lookup misses, so the common routes cost one dict lookup. Gemini, Bedrock and
Vertex paths are found behind any prefix a client's base URL adds (``/bedrock/model/…``,
``/vertex/v1/projects/…``).
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
# /v1beta/models/{model}:generateContent, also Vertex style /v1beta1/publishers/google/models/…
# and /v1/projects/{p}/locations/{l}/publishers/google/models/…, behind any path prefix a
# client's base URL adds (/gw/gemini/v1beta/…).
_GEMINI = re.compile(
    r"^(?:/.*)?/(?:v1|v1beta|v1beta1|v1alpha)/(?:projects/[^/]+/locations/[^/]+/)?(?:publishers/google/)?models/([^/:]+):"
    r"(generateContent|streamGenerateContent|countTokens)$"
)
# Bedrock: /model/{id}/invoke[-with-response-stream]; an id may hold slashes once its %2F is
# decoded (an inference-profile ARN), so it runs to the last segment.
_BEDROCK = re.compile(r"^(?:/.*?)?/model/(.+)/(invoke|invoke-with-response-stream)$")
_BEDROCK_SUFFIXES = ("/invoke", "/invoke-with-response-stream")
# Vertex: …/projects/{p}/locations/{l}/publishers/anthropic/models/{model}:rawPredict | :streamRawPredict;
# a token count is the model "count-tokens" with :rawPredict.
_VERTEX = re.compile(r"^(?:/.*)?/projects/[^/]+/locations/[^/]+/publishers/anthropic/models/([^/]+):(rawPredict|streamRawPredict)$")
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
    elif path.endswith(_BEDROCK_SUFFIXES):
        match = _BEDROCK.match(path)
        if match is not None:
            return Endpoint(ApiFormat.BEDROCK, Operation.GENERATE, model=unquote(match.group(1)), stream=match.group(2) != "invoke")
    elif path.endswith("Predict"):
        match = _VERTEX.match(path)
        if match is not None:
            model = unquote(match.group(1))
            if model == "count-tokens":  # the model is named in the body
                return Endpoint(ApiFormat.VERTEX, Operation.COUNT_TOKENS)
            return Endpoint(ApiFormat.VERTEX, Operation.GENERATE, model=model, stream=match.group(2) == "streamRawPredict")
    elif ":" in path:
        match = _GEMINI.match(path)
        if match is not None:
            operation, stream = _GEMINI_METHODS[match.group(2)]
            return Endpoint(ApiFormat.GEMINI, operation, model=unquote(match.group(1)), stream=stream)
    return None
