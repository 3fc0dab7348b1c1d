"""The requests the benchmark sends: one small request per client API (a *surface*), direct or through keystile.

A scenario is a client surface (what the caller speaks to keystile) in front of an upstream
surface (what keystile speaks to the mock). The direct request is what keystile itself sends
upstream (the deployment's model name, the upstream key), so the mock does the same work on
both paths and the difference is keystile alone — translation included when the two differ.
Adding a client API to the benchmark is one ``Surface`` and one ``Scenario`` entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import orjson

UPSTREAM_ANTHROPIC_MODEL = "claude-sonnet-4-5-20250929"
UPSTREAM_OPENAI_MODEL = "gpt-4o-2024-08-06"
UPSTREAM_KEY = "sk-bench-upstream-0000"
PROMPT = "Hello"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request a load generator repeats; headers exclude host and content-length."""

    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    method: str = "POST"

    def to_json(self) -> dict:
        return {"method": self.method, "path": self.path, "headers": [list(h) for h in self.headers], "body": self.body.decode()}

    def raw(self, host: str, port: int) -> bytes:
        """The request on the wire (HTTP/1.1, keep-alive)."""
        lines = [f"{self.method} {self.path} HTTP/1.1", f"host: {host}:{port}", f"content-length: {len(self.body)}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def _messages_body(model: str, stream: bool) -> dict:
    body: dict = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": PROMPT}]}
    return {**body, "stream": True} if stream else body


def _chat_body(model: str, stream: bool) -> dict:
    body: dict = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    return {**body, "stream": True} if stream else body


def _responses_body(model: str, stream: bool) -> dict:
    body: dict = {"model": model, "input": PROMPT}
    return {**body, "stream": True} if stream else body


def _gemini_body(model: str, stream: bool) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}  # the model is in the path


def _gemini_path(model: str, stream: bool) -> str:
    return f"/v1beta/models/{model}:streamGenerateContent?alt=sse" if stream else f"/v1beta/models/{model}:generateContent"


def _bearer(credential: str) -> tuple[tuple[str, str], ...]:
    return (("content-type", "application/json"), ("authorization", f"Bearer {credential}"))


@dataclass(frozen=True, slots=True)
class Surface:
    """A client API: where its requests go, how they carry the key, what their body looks like."""

    name: str
    api: str  # the family of its wire format: "anthropic" | "openai" | "gemini"
    path: Callable[[str, bool], str]  # (model, stream) -> path and query
    headers: Callable[[str], tuple[tuple[str, str], ...]]  # credential -> headers
    body: Callable[[str, bool], dict]  # (model, stream) -> JSON body

    def request(self, model: str, credential: str, stream: bool) -> HttpRequest:
        return HttpRequest(self.path(model, stream), self.headers(credential), orjson.dumps(self.body(model, stream)))


SURFACES: dict[str, Surface] = {
    s.name: s
    for s in (
        Surface("messages", "anthropic", lambda m, s: "/v1/messages",
                lambda c: (("content-type", "application/json"), ("anthropic-version", "2023-06-01"), ("x-api-key", c)),
                _messages_body),
        Surface("chat", "openai", lambda m, s: "/v1/chat/completions", _bearer, _chat_body),
        Surface("responses", "openai", lambda m, s: "/v1/responses", _bearer, _responses_body),
        Surface("gemini", "gemini", _gemini_path, lambda c: (("content-type", "application/json"), ("x-goog-api-key", c)),
                _gemini_body),
    )
}


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    client: str  # the surface the caller speaks to keystile (a SURFACES key)
    gateway_model: str
    upstream: str  # the surface keystile speaks to the mock
    upstream_model: str
    stream: bool

    @property
    def api(self) -> str:
        """The upstream's wire family: which paced deployment serves this scenario's streams."""
        return SURFACES[self.upstream].api

    def direct(self, model: str | None = None) -> HttpRequest:
        return SURFACES[self.upstream].request(model or self.upstream_model, UPSTREAM_KEY, self.stream)

    def through_gateway(self, virtual_key: str, model: str | None = None) -> HttpRequest:
        return SURFACES[self.client].request(model or self.gateway_model, virtual_key, self.stream)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("messages", "Anthropic Messages, non-streaming", "messages", "claude-bench", "messages", UPSTREAM_ANTHROPIC_MODEL, False),
        Scenario("messages-stream", "Anthropic Messages, streaming (SSE)", "messages", "claude-bench", "messages", UPSTREAM_ANTHROPIC_MODEL, True),
        Scenario("chat", "OpenAI Chat Completions, non-streaming", "chat", "gpt-bench", "chat", UPSTREAM_OPENAI_MODEL, False),
        Scenario("chat-stream", "OpenAI Chat Completions, streaming (SSE)", "chat", "gpt-bench", "chat", UPSTREAM_OPENAI_MODEL, True),
        # The Responses and Gemini surfaces, in front of the Anthropic deployment (the mock speaks
        # neither): keystile's cost per surface, translation included. Measured once their names
        # are in LATENCY_SCENARIOS (the default) or asked for with --latency-scenarios.
        Scenario("responses-stream", "OpenAI Responses, streaming (SSE), to an Anthropic deployment", "responses",
                 "claude-bench", "messages", UPSTREAM_ANTHROPIC_MODEL, True),
        Scenario("gemini-stream", "Gemini streamGenerateContent (SSE), to an Anthropic deployment", "gemini",
                 "claude-bench", "messages", UPSTREAM_ANTHROPIC_MODEL, True),
    )
}

THROUGHPUT_SCENARIOS = ("messages", "messages-stream", "chat")
"""Closed-loop load at 64 connections, and the soak's mix."""
LATENCY_SCENARIOS = ("messages", "chat", "messages-stream", "chat-stream", "responses-stream", "gemini-stream")
"""Open-loop added latency at one connection (streams: time to first byte). The first is the
reference the others are held to (within 0.1 ms)."""
STREAM_SCENARIOS = ("messages-stream", "chat-stream")
"""Sequential time to first byte, and the no-buffering check."""

PACED_MODELS = {"anthropic": "claude-paced", "openai": "gpt-paced"}
ROUTED_MODEL = "claude-routed"
"""A group of three weighted deployments of the Messages scenario's upstream model (the ``routed`` runs)."""
AGENT_MODEL = "claude-agent"
"""Long agent streams: a deployment on the paced mock whose upstream model (``AGENT_UPSTREAM_MODEL``)
the mock answers with a few events some hundred milliseconds apart."""
AGENT_UPSTREAM_MODEL = "claude-sonnet-4-20250514"
"""A model of its own, so the paced mock can tell these requests apart, and one with a price, so
spend accounting takes its usual path."""
