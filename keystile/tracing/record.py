"""What a finished request's spans say: the GenAI semantic-convention attributes and keystile's own.

``RequestTrace`` is what the handler noted while it served one request; the functions below turn
it into span names and attributes, as plain data (no OpenTelemetry import), so they are tested
like any pure function. The conventions followed are OpenTelemetry's GenAI spans
(``gen_ai.provider.name``, ``gen_ai.operation.name``, ``gen_ai.request.*``, ``gen_ai.response.*``,
``gen_ai.usage.*``, ``error.type``), as of semantic conventions 1.41.

Secrets and content never reach an attribute: a request body is read for its numeric sampling
parameters only, an answer for its model name, id and finish reasons, and the only header read
is the client's ``traceparent``/``tracestate``. The key is named by its alias, never its value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from keystile.accounting.usage import Usage
from keystile.apiformat import ApiFormat
from keystile.config.model import Deployment
from keystile.providers.base import Operation
from keystile.sse import SSEParser

# gen_ai.provider.name for each keystile provider (the convention's well-known values).
PROVIDER_NAMES = {
    "anthropic": "anthropic",
    "openai": "openai",
    "azure": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "vertex": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "mock": "keystile.mock",
}
# OpenAI-compatible services behind an ``openai`` deployment, told apart by their host.
_HOST_PROVIDERS = {
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "api.mistral.ai": "mistral_ai",
    "api.x.ai": "x_ai",
    "api.perplexity.ai": "perplexity",
    "api.cohere.com": "cohere",
    "api.cohere.ai": "cohere",
}
_GOOGLE_PROVIDERS = ("gcp.gemini", "gcp.vertex_ai")
_MAX_NAME = 128
"""Longest model name, id or finish reason copied from an answer (they are short; a longer one is cut)."""
_MAX_CLIENT_TEXT = 256
"""Longest model name or path copied from a request: a client may send anything there."""
ANSWER_PARSE_LIMIT = 4 << 20
"""A non-streaming answer larger than this is not parsed again for its model and finish reasons."""


@dataclass(slots=True)
class AttemptTrace:
    """One try of one deployment: from the moment keystile began it (after any backoff) to its outcome."""

    deployment: Deployment
    start: float
    """``perf_counter()`` when the attempt began."""
    end: float = 0.0
    error_type: str | None = None
    """None: the deployment answered. Else the upstream's HTTP status, or the failure's class name."""
    first_chunk: float | None = None
    """``perf_counter()`` when a stream's first chunk arrived."""


@dataclass(slots=True)
class AnswerFacts:
    model: str | None = None
    id: str | None = None
    finish_reasons: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RequestTrace:
    """One inference request as the handler saw it, collected for its span."""

    client: ApiFormat
    operation: Operation
    route: str
    started: float
    """Wall-clock time (``time.time()``) the request arrived."""
    t0: float
    """``perf_counter()`` at the same moment: every other time here is on this clock."""
    end: float
    status: int
    requested_model: str | None = None
    stream: bool = False
    body: dict | None = None
    """The client's request body (read for numeric parameters only)."""
    request_id: str | None = None
    key_alias: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    group: str | None = None
    deployment: Deployment | None = None
    """The deployment of the last attempt (the one that answered, if any did)."""
    attempts: list[AttemptTrace] = field(default_factory=list)
    usage: Usage | None = None
    cost: float | None = None
    answer: AnswerFacts | None = None
    traceparent: str | None = None
    tracestate: str | None = None

    @property
    def first_chunk(self) -> float | None:
        for attempt in reversed(self.attempts):
            if attempt.first_chunk is not None:
                return attempt.first_chunk
        return None


# --- names --------------------------------------------------------------------------------------

_provider_cache: dict[tuple[str, str | None], str] = {}


def provider_name(deployment: Deployment) -> str:
    """``gen_ai.provider.name`` of a deployment: its provider, or for an OpenAI-compatible
    service keystile recognises by host (Groq, DeepSeek, Mistral …) that service's name."""
    key = (deployment.provider, deployment.api_base)
    name = _provider_cache.get(key)
    if name is None:
        name = PROVIDER_NAMES.get(deployment.provider, deployment.provider)
        if name == "openai" and deployment.api_base:
            name = _HOST_PROVIDERS.get(urlsplit(deployment.api_base).hostname or "", name)
        if len(_provider_cache) < 1024:
            _provider_cache[key] = name
    return name


def server_of(deployment: Deployment) -> tuple[str | None, int | None]:
    """(host, port) of a deployment's upstream, for ``server.address`` / ``server.port``."""
    if not deployment.api_base:
        return None, None
    parts = urlsplit(deployment.api_base)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = None
    return parts.hostname, port


def operation_name(operation: Operation, google: bool) -> str:
    """``gen_ai.operation.name``: ``chat``, ``generate_content`` (Gemini's API), ``embeddings``;
    a token count is keystile's own ``count_tokens``."""
    if operation is Operation.GENERATE:
        return "generate_content" if google else "chat"
    return operation.value


def request_span_name(trace: RequestTrace) -> str:
    """``{gen_ai.operation.name} {gen_ai.request.model}``, as the convention names inference spans."""
    name = operation_name(trace.operation, trace.client is ApiFormat.GEMINI)
    return f"{name} {trace.requested_model[:_MAX_CLIENT_TEXT]}" if trace.requested_model else name


def attempt_span_name(trace: RequestTrace, attempt: AttemptTrace) -> str:
    deployment = attempt.deployment
    name = operation_name(trace.operation, provider_name(deployment) in _GOOGLE_PROVIDERS)
    model = deployment.model or trace.requested_model
    return f"{name} {model[:_MAX_CLIENT_TEXT]}" if model else name


# --- attributes ---------------------------------------------------------------------------------


def request_attributes(trace: RequestTrace) -> dict[str, Any]:
    """The request span's attributes: what the client asked, how keystile routed it, what it cost."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation_name(trace.operation, trace.client is ApiFormat.GEMINI),
        "http.request.method": "POST",
        "url.path": trace.route[:_MAX_CLIENT_TEXT],
        "keystile.client_format": trace.client.value,
        "keystile.attempts": len(trace.attempts),
    }
    if trace.status:
        attributes["http.response.status_code"] = trace.status
    if trace.requested_model:
        attributes["gen_ai.request.model"] = trace.requested_model[:_MAX_CLIENT_TEXT]
    deployment = trace.deployment
    if deployment is not None:
        provider = provider_name(deployment)
        attributes["gen_ai.provider.name"] = provider
        attributes["gen_ai.system"] = provider  # the attribute's older name, still read by many backends
        attributes["keystile.deployment"] = deployment.id
    if trace.stream:
        attributes["gen_ai.request.stream"] = True
    if trace.body is not None:
        attributes.update(request_parameters(trace.client, trace.body))
    answer = trace.answer
    if answer is not None:
        if answer.model:
            attributes["gen_ai.response.model"] = answer.model
        if answer.id:
            attributes["gen_ai.response.id"] = answer.id
        if answer.finish_reasons:
            attributes["gen_ai.response.finish_reasons"] = answer.finish_reasons
    if "gen_ai.response.model" not in attributes and deployment is not None and deployment.model and trace.status == 200:
        attributes["gen_ai.response.model"] = deployment.model  # the model keystile asked for, when the answer names none
    usage = trace.usage
    if usage is not None and (usage.total_tokens or trace.status == 200):
        attributes.update(usage_attributes(usage))
    first_chunk = trace.first_chunk
    if trace.stream and first_chunk is not None:
        attributes["gen_ai.response.time_to_first_chunk"] = round(first_chunk - trace.t0, 6)
    if trace.status >= 400:
        attributes["error.type"] = str(trace.status)
    if trace.request_id:
        attributes["keystile.request_id"] = trace.request_id
    if trace.key_alias:
        attributes["keystile.key_alias"] = trace.key_alias
    if trace.user_id:
        attributes["keystile.user_id"] = trace.user_id
    if trace.team_id:
        attributes["keystile.team_id"] = trace.team_id
    if trace.group:
        attributes["keystile.model_group"] = trace.group
    if trace.cost is not None:
        attributes["keystile.cost_usd"] = trace.cost
    return attributes


def sampling_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """The attributes the convention wants known when a span starts (samplers may look at them)."""
    return {
        name: attributes[name]
        for name in ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "server.address", "server.port")
        if name in attributes
    }


def attempt_attributes(trace: RequestTrace, attempt: AttemptTrace, number: int) -> dict[str, Any]:
    """An upstream attempt's span: the deployment called, where, and how it ended.

    Token usage stays on the request span alone, so a backend that adds up ``gen_ai.usage``
    over a trace counts each request once.
    """
    deployment = attempt.deployment
    provider = provider_name(deployment)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation_name(trace.operation, provider in _GOOGLE_PROVIDERS),
        "gen_ai.provider.name": provider,
        "gen_ai.system": provider,
        "keystile.deployment": deployment.id,
        "keystile.attempt": number,
    }
    model = deployment.model or trace.requested_model
    if model:
        attributes["gen_ai.request.model"] = model[:_MAX_CLIENT_TEXT]
    host, port = server_of(deployment)
    if host:
        attributes["server.address"] = host
        if port:
            attributes["server.port"] = port
    if trace.stream:
        attributes["gen_ai.request.stream"] = True
    if attempt.error_type is not None:
        attributes["error.type"] = attempt.error_type
        if attempt.error_type.isdigit():
            attributes["http.response.status_code"] = int(attempt.error_type)
    if attempt.first_chunk is not None:
        attributes["gen_ai.response.time_to_first_chunk"] = round(attempt.first_chunk - attempt.start, 6)
    return attributes


def usage_attributes(usage: Usage) -> dict[str, int]:
    """``gen_ai.usage.*``: input counts every input token, cached ones included (as the convention
    asks); the cache reads and writes are also given on their own."""
    attributes = {
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
    }
    if usage.cache_read_tokens:
        attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        attributes["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
    return attributes


# Where each format keeps the sampling parameters: attribute → the body's key (or Gemini's
# generationConfig key). Only numbers are copied, so no text of the request can end up here.
_PARAMETERS = {
    ApiFormat.ANTHROPIC: (("max_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k")),
    ApiFormat.OPENAI: (
        ("max_tokens", "max_completion_tokens"), ("max_tokens", "max_tokens"), ("temperature", "temperature"),
        ("top_p", "top_p"), ("frequency_penalty", "frequency_penalty"), ("presence_penalty", "presence_penalty"),
        ("seed", "seed"), ("choice.count", "n"),
    ),
    ApiFormat.RESPONSES: (("max_tokens", "max_output_tokens"), ("temperature", "temperature"), ("top_p", "top_p")),
    ApiFormat.GEMINI: (
        ("max_tokens", "maxOutputTokens"), ("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"),
        ("seed", "seed"), ("choice.count", "candidateCount"),
    ),
}


def request_parameters(client: ApiFormat, body: dict) -> dict[str, int | float]:
    """``gen_ai.request.max_tokens`` / ``temperature`` / ``top_p`` … where the request sets them."""
    source = body.get("generationConfig") if client is ApiFormat.GEMINI else body
    if not isinstance(source, dict):
        return {}
    out: dict[str, int | float] = {}
    for name, key in _PARAMETERS.get(client, ()):
        value = source.get(key)
        attribute = "gen_ai.request." + name
        if attribute in out or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if name == "choice.count" and value == 1:
            continue  # the convention records it only when it is not 1
        out[attribute] = value
    return out


# --- the answer ---------------------------------------------------------------------------------


def answer_facts(head: bytes, tail: list[bytes], stream: bool) -> AnswerFacts:
    """The response model, id and finish reasons, from the answer keystile sent (in the client's format).

    A whole answer is parsed as JSON; a stream's first chunk (which names the model and id) and its
    last chunks (which carry the finish reason) are parsed as SSE events. Only those fields are
    read, in the places each format puts them, so nothing the model wrote is copied.
    """
    facts = AnswerFacts()
    if not stream:
        if head and len(head) <= ANSWER_PARSE_LIMIT:
            _read_object(_json(head), facts)
        return facts
    seen: set[int] = set()
    for chunk in (head, *tail):
        if not chunk or id(chunk) in seen:
            continue
        seen.add(id(chunk))
        parser = SSEParser()
        for event in parser.feed(chunk if chunk.endswith(b"\n\n") else chunk + b"\n\n"):
            if event.data and event.data[:1] == b"{":
                _read_object(_json(event.data), facts)
    return facts


def _json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _read_object(obj: Any, facts: AnswerFacts) -> None:
    """One answer object or stream event, in any of the four formats."""
    if not isinstance(obj, dict):
        return
    for container in ("message", "response"):  # Anthropic's message_start, Responses' response.* events
        inner = obj.get(container)
        if isinstance(inner, dict):
            _read_object(inner, facts)
    model = _name(obj.get("model")) or _name(obj.get("modelVersion"))
    if model:
        facts.model = model
    answer_id = _name(obj.get("id")) or _name(obj.get("responseId"))
    if answer_id and facts.id is None:
        facts.id = answer_id
    reasons: list[str] = []
    stop = _name(obj.get("stop_reason"))  # Anthropic Messages
    delta = obj.get("delta")
    if stop is None and isinstance(delta, dict):
        stop = _name(delta.get("stop_reason"))  # message_delta
    if stop:
        reasons.append(stop)
    for key, reason_key in (("choices", "finish_reason"), ("candidates", "finishReason")):  # Chat, Gemini
        items = obj.get(key)
        if isinstance(items, list):
            for item in items:
                if isinstance(item, dict):
                    reason = _name(item.get(reason_key))
                    if reason:
                        reasons.append(reason)
    if obj.get("object") == "response":  # Responses: how it ended is its status
        details = obj.get("incomplete_details")
        reason = _name(details.get("reason")) if isinstance(details, dict) else None
        status = _name(obj.get("status"))
        if reason or status in ("completed", "failed", "incomplete", "cancelled"):
            reasons = [reason or status]  # type: ignore[list-item]
    if reasons:
        facts.finish_reasons = reasons


def _name(value: Any) -> str | None:
    return value[:_MAX_NAME] if isinstance(value, str) and value else None
