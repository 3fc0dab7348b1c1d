"""The requests the benchmark sends: one small request per API shape, direct or through keystile.

The direct request is what keystile itself sends upstream (the deployment's model name,
the upstream key), so the mock does the same work on both paths and the difference is
keystile alone.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    path: str
    api: str  # "anthropic" | "openai"
    gateway_model: str
    upstream_model: str
    stream: bool

    def _body(self, model: str) -> bytes:
        body: dict = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
        if self.api == "anthropic":
            body["max_tokens"] = 64
        if self.stream:
            body["stream"] = True
        return orjson.dumps(body)

    def _headers(self, credential: str) -> tuple[tuple[str, str], ...]:
        if self.api == "anthropic":
            return (("content-type", "application/json"), ("anthropic-version", "2023-06-01"), ("x-api-key", credential))
        return (("content-type", "application/json"), ("authorization", f"Bearer {credential}"))

    def direct(self) -> HttpRequest:
        return HttpRequest(self.path, self._headers(UPSTREAM_KEY), self._body(self.upstream_model))

    def through_gateway(self, virtual_key: str, model: str | None = None) -> HttpRequest:
        return HttpRequest(self.path, self._headers(virtual_key), self._body(model or self.gateway_model))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("messages", "Anthropic Messages, non-streaming", "/v1/messages", "anthropic", "claude-bench", UPSTREAM_ANTHROPIC_MODEL, False),
        Scenario("messages-stream", "Anthropic Messages, streaming (SSE)", "/v1/messages", "anthropic", "claude-bench", UPSTREAM_ANTHROPIC_MODEL, True),
        Scenario("chat", "OpenAI Chat Completions, non-streaming", "/v1/chat/completions", "openai", "gpt-bench", UPSTREAM_OPENAI_MODEL, False),
    )
}

# Streams used for time-to-first-byte and the no-buffering check.
STREAM_SCENARIOS: dict[str, Scenario] = {
    "messages-stream": SCENARIOS["messages-stream"],
    "chat-stream": Scenario("chat-stream", "OpenAI Chat Completions, streaming (SSE)", "/v1/chat/completions", "openai", "gpt-bench", UPSTREAM_OPENAI_MODEL, True),
}
PACED_MODELS = {"anthropic": "claude-paced", "openai": "gpt-paced"}
ROUTED_MODEL = "claude-routed"
"""A group of three weighted deployments of the Messages scenario's upstream model (the ``routed`` runs)."""
