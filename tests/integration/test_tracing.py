"""Issue 14.5: OpenTelemetry spans, exported by the real gateway to a real OTLP/HTTP receiver.

The receiver is a small HTTP server in the test that accepts ``POST /v1/traces`` and decodes the
protobuf body with ``opentelemetry-proto`` — what a collector does. Expected values come from the
official SDKs' parsed answers, the public price list (Claude Sonnet 4.5: $3 / $15 per million
input / output tokens) and W3C Trace Context's example ``traceparent``.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import anthropic
import httpx
import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.integration.harness import (
    CLIENT_ANTHROPIC_API_KEY,
    MASTER_KEY,
    OAUTH_TOKEN,
    UPSTREAM_ANTHROPIC_KEY,
    UPSTREAM_AZURE_KEY,
    UPSTREAM_OPENAI_KEY,
    GatewayProcess,
    standard_config,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
COLLECTOR_TOKEN = "collector-token-SECRET-6666"
PROMPT = "tell me about the purple-walrus-7781 please"


class OtlpReceiver:
    """Accepts OTLP/HTTP exports (``POST /v1/traces``, protobuf) and keeps them: raw bytes, headers, spans."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                ExportTraceServiceRequest.FromString(body)  # a body that does not decode fails the export
                with receiver.lock:
                    receiver.bodies.append(body)
                    receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self) -> list[tuple[dict, Span]]:
        """(resource attributes, span) for every span received so far."""
        out = []
        with self.lock:
            bodies = list(self.bodies)
        for body in bodies:
            for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
                resource = attributes(resource_spans.resource)
                for scope_spans in resource_spans.scope_spans:
                    out.extend((resource, span) for span in scope_spans.spans)
        return out

    def wait_for(self, predicate: Callable[[list[Span]], bool], timeout: float = 20.0) -> list[Span]:
        deadline = time.monotonic() + timeout
        while True:
            spans = [span for _, span in self.spans()]
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"the expected spans did not arrive in {timeout}s; got {[s.name for s in spans]}")
            time.sleep(0.05)

    def raw(self) -> bytes:
        with self.lock:
            return b"".join(self.bodies)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def attributes(item: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in item.attributes}


def request_span(spans: list[Span], request_id: str) -> Span | None:
    for span in spans:
        if span.kind == Span.SPAN_KIND_SERVER and attributes(span).get("keystile.request_id") == request_id:
            return span
    return None


def children(spans: list[Span], parent: Span) -> list[Span]:
    return sorted((s for s in spans if s.parent_span_id == parent.span_id), key=lambda s: s.start_time_unix_nano)


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, receiver) -> Iterator[GatewayProcess]:  # type: ignore[no-untyped-def]
    extra = (
        "router:\n  retry_backoff: 0.05\n"
        f"otel:\n  enabled: true\n  endpoint: {receiver.url}\n  headers: {{x-collector-token: {COLLECTOR_TOKEN}}}\n"
        "  service_name: keystile-under-test\n"
    )
    # The batch processor's delay, shortened through its standard variable so the test does not wait 5 s.
    with GatewayProcess(standard_config(upstream.url, extra=extra), env={"OTEL_BSP_SCHEDULE_DELAY": "50"}) as gw:
        yield gw


def test_a_request_span_continues_the_clients_trace_with_genai_and_keystile_attributes(gateway, receiver, upstream):
    key = gateway.create_key(key_alias="tracing-alice", user_id="alice")
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as client:
        raw = client.messages.with_raw_response.create(
            model="claude-test", max_tokens=64, extra_body={"temperature": 0.25}, messages=[{"role": "user", "content": PROMPT}],
            extra_headers={"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"},
        )
    message = raw.parse()
    request_id = raw.headers["x-keystile-request-id"]
    spans = receiver.wait_for(lambda spans: request_span(spans, request_id) is not None)
    span = request_span(spans, request_id)
    assert span is not None
    found = attributes(span)

    assert span.trace_id.hex() == TRACE_ID and span.parent_span_id.hex() == PARENT_SPAN_ID  # the client's trace
    assert span.trace_state == "congo=t61rcWkgMzE"
    assert span.name == "chat claude-test"
    assert span.status.code != Status.STATUS_CODE_ERROR
    expected_cost = (message.usage.input_tokens * 3 + message.usage.output_tokens * 15) / 1_000_000
    assert found == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.system": "anthropic",
        "gen_ai.request.model": "claude-test",
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.temperature": 0.25,
        "gen_ai.response.model": message.model,
        "gen_ai.response.id": message.id,
        "gen_ai.response.finish_reasons": [message.stop_reason],
        "gen_ai.usage.input_tokens": message.usage.input_tokens,
        "gen_ai.usage.output_tokens": message.usage.output_tokens,
        "http.request.method": "POST",
        "http.response.status_code": 200,
        "url.path": "/v1/messages",
        "keystile.client_format": "anthropic",
        "keystile.request_id": request_id,
        "keystile.key_alias": "tracing-alice",
        "keystile.user_id": "alice",
        "keystile.model_group": "claude-test",
        "keystile.deployment": raw.headers["x-keystile-deployment"],
        "keystile.attempts": 1,
        "keystile.cost_usd": pytest.approx(expected_cost),
    }
    [attempt] = children(spans, span)
    assert attempt.kind == Span.SPAN_KIND_CLIENT and attempt.name == "chat claude-sonnet-4-5-20250929"
    upstream_port = int(upstream.url.rsplit(":", 1)[1])
    assert attributes(attempt)["server.address"] == "127.0.0.1" and attributes(attempt)["server.port"] == upstream_port
    assert span.start_time_unix_nano <= attempt.start_time_unix_nano <= attempt.end_time_unix_nano <= span.end_time_unix_nano

    resources = [resource for resource, s in receiver.spans() if s.span_id == span.span_id]
    assert resources[0]["service.name"] == "keystile-under-test"
    assert all(h.get("x-collector-token") == COLLECTOR_TOKEN for h in receiver.headers)  # the configured headers
    assert all(h.get("content-type") == "application/x-protobuf" for h in receiver.headers)  # OTLP/HTTP, protobuf
    # keystile does not forward the client's traceparent upstream (its own attempt span is not propagated either)
    [received] = [r for r in upstream.requests() if PROMPT in r["body"]]
    assert not any(name in ("traceparent", "tracestate") for name, _ in received["headers"])


def test_a_retry_shows_as_a_failed_attempt_then_the_one_that_streamed(gateway, receiver, upstream):
    upstream.set_faults([{"match": {"model": "gpt-4o-2024-08-06"}, "times": 1, "action": {"type": "status", "status": 503}}])
    key = gateway.create_key(key_alias="tracing-retry")
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as client:
        with client.chat.completions.with_streaming_response.create(
            model="gpt-test", stream=True, stream_options={"include_usage": True}, max_tokens=32,
            messages=[{"role": "user", "content": PROMPT}],
        ) as response:
            request_id = response.headers["x-keystile-request-id"]
            assert response.headers["x-keystile-attempts"] == "2"
            chunks = list(response.parse())
    finish_reasons = [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason]
    usage = [chunk.usage for chunk in chunks if chunk.usage][-1]
    spans = receiver.wait_for(lambda spans: request_span(spans, request_id) is not None)
    span = request_span(spans, request_id)
    found = attributes(span)
    assert found["gen_ai.provider.name"] == "openai" and found["gen_ai.request.model"] == "gpt-test"
    assert found["gen_ai.request.stream"] is True and found["gen_ai.request.max_tokens"] == 32
    assert found["gen_ai.response.finish_reasons"] == finish_reasons == ["stop"]
    assert found["gen_ai.response.model"] == chunks[0].model and found["gen_ai.response.id"] == chunks[0].id
    assert (found["gen_ai.usage.input_tokens"], found["gen_ai.usage.output_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert found["keystile.attempts"] == 2 and "error.type" not in found
    assert 0 < found["gen_ai.response.time_to_first_chunk"] <= (span.end_time_unix_nano - span.start_time_unix_nano) / 1e9

    failed, served = children(spans, span)
    assert attributes(failed)["error.type"] == "503" and failed.status.code == Status.STATUS_CODE_ERROR
    assert attributes(failed)["keystile.attempt"] == 1 and attributes(served)["keystile.attempt"] == 2
    assert "error.type" not in attributes(served) and served.status.code != Status.STATUS_CODE_ERROR
    assert failed.end_time_unix_nano <= served.start_time_unix_nano  # the retry came after the failure (and its backoff)
    assert attributes(served)["gen_ai.response.time_to_first_chunk"] > 0


def test_an_answer_keystile_cannot_read_is_a_failed_attempt_and_a_502(gateway, receiver, upstream):
    upstream.set_faults([{"match": {"model": "claude-sonnet-4-5-20250929"}, "times": 1,
                          "action": {"type": "status", "status": 200, "body": "<html>a proxy's page</html>",
                                     "headers": {"content-type": "text/html"}}}])
    key = gateway.create_key(key_alias="tracing-unreadable")
    response = httpx.post(
        f"{gateway.url}/v1/messages", json={"model": "claude-test", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-api-key": key}, timeout=10,
    )
    assert response.status_code == 502
    request_id = response.headers["x-keystile-request-id"]
    spans = receiver.wait_for(lambda spans: request_span(spans, request_id) is not None)
    span = request_span(spans, request_id)
    assert attributes(span)["error.type"] == "502" and span.status.code == Status.STATUS_CODE_ERROR
    [attempt] = children(spans, span)
    assert attributes(attempt)["error.type"] == "UnreadableAnswer" and attempt.status.code == Status.STATUS_CODE_ERROR


def test_refused_requests_have_spans_that_say_why(gateway, receiver):
    anonymous = httpx.post(
        f"{gateway.url}/v1/messages", json={"model": "claude-test", "max_tokens": 8, "messages": []},
        headers={"x-api-key": "sk-ks-not-a-key-at-all", "traceparent": TRACEPARENT}, timeout=10,
    )
    assert anonymous.status_code == 401
    key = gateway.create_key(key_alias="tracing-limited", models=["gpt-test"])
    refused = httpx.post(
        f"{gateway.url}/v1/messages", json={"model": "claude-test", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": key}, timeout=10,
    )
    assert refused.status_code == 403
    request_id = refused.headers["x-keystile-request-id"]
    spans = receiver.wait_for(
        lambda spans: request_span(spans, request_id) is not None
        and any(attributes(s).get("error.type") == "401" and s.trace_id.hex() == TRACE_ID for s in spans)
    )
    found = attributes(request_span(spans, request_id))
    assert found["error.type"] == "403" and found["keystile.key_alias"] == "tracing-limited"
    assert found["keystile.attempts"] == 0 and "gen_ai.provider.name" not in found
    [unauthenticated] = [s for s in spans if attributes(s).get("error.type") == "401" and s.trace_id.hex() == TRACE_ID]
    assert "keystile.key_alias" not in attributes(unauthenticated)


def test_nothing_secret_or_written_by_anyone_is_in_the_exported_bytes(gateway, receiver):
    key = gateway.create_key(key_alias="tracing-secrets")
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as client:
        message = client.messages.create(model="claude-test", max_tokens=64, messages=[{"role": "user", "content": PROMPT}])
    # a client that brings its own upstream credential (Claude Desktop's case), to a forwarding deployment
    forwarded = httpx.post(
        f"{gateway.url}/v1/messages",
        json={"model": "claude-forward", "max_tokens": 16, "messages": [{"role": "user", "content": PROMPT}]},
        headers={"authorization": f"Bearer {OAUTH_TOKEN}", "x-api-key": key, "anthropic-version": "2023-06-01"},
        timeout=10,
    )
    assert forwarded.status_code == 200
    streamed = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": PROMPT}]},
        headers={"authorization": f"Bearer {key}", "api-key": CLIENT_ANTHROPIC_API_KEY}, timeout=10,
    )
    assert streamed.status_code == 200
    ids = {message.id, forwarded.json()["id"]}
    receiver.wait_for(lambda spans: {attributes(s).get("gen_ai.response.id") for s in spans} >= ids)
    exported = receiver.raw()
    answer = message.content[0].text
    assert len(answer) > 10
    for secret in (key, MASTER_KEY, UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY, UPSTREAM_AZURE_KEY, OAUTH_TOKEN,
                   CLIENT_ANTHROPIC_API_KEY, PROMPT, "purple-walrus", answer):
        assert secret.encode() not in exported, secret
    log = gateway.log()
    assert COLLECTOR_TOKEN not in log  # the collector's credential is not logged either
    assert "could not write" not in log and "Failed to export" not in log


def test_gemini_chat_and_responses_clients_spans_read_their_own_answers(gateway, receiver):
    key = gateway.create_key(key_alias="tracing-formats")
    # Gemini, with the key in ?key= (Google's way): the query string is never part of a span
    gemini = httpx.post(
        f"{gateway.url}/v1beta/models/claude-test:generateContent?key={key}",
        json={"contents": [{"role": "user", "parts": [{"text": PROMPT}]}], "generationConfig": {"maxOutputTokens": 40, "topP": 0.5}},
        timeout=10,
    )
    assert gemini.status_code == 200
    answer = gemini.json()
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as client:  # Chat → Anthropic, translated
        raw = client.chat.completions.with_raw_response.create(model="claude-test", messages=[{"role": "user", "content": PROMPT}])
        chat_id = raw.headers["x-keystile-request-id"]
        completion = raw.parse()
        with client.responses.with_streaming_response.create(model="gpt-test", input=PROMPT, stream=True) as streamed:
            responses_id = streamed.headers["x-keystile-request-id"]
            events = list(streamed.parse())
    final = [e.response for e in events if e.type == "response.completed"][-1]
    gemini_id = gemini.headers["x-keystile-request-id"]
    spans = receiver.wait_for(lambda spans: all(request_span(spans, i) for i in (gemini_id, chat_id, responses_id)))

    found = attributes(request_span(spans, gemini_id))
    assert request_span(spans, gemini_id).name == "generate_content claude-test"
    assert found["gen_ai.operation.name"] == "generate_content" and found["keystile.client_format"] == "gemini"
    assert found["url.path"] == "/v1beta/models/claude-test:generateContent"
    assert (found["gen_ai.request.max_tokens"], found["gen_ai.request.top_p"]) == (40, 0.5)
    assert found["gen_ai.response.finish_reasons"] == [answer["candidates"][0]["finishReason"]]
    assert found["gen_ai.response.model"] == answer["modelVersion"]
    assert found["gen_ai.usage.output_tokens"] == answer["usageMetadata"]["candidatesTokenCount"]

    found = attributes(request_span(spans, chat_id))
    assert found["keystile.client_format"] == "openai" and found["gen_ai.provider.name"] == "anthropic"
    assert (found["gen_ai.response.id"], found["gen_ai.response.model"]) == (completion.id, completion.model)
    assert found["gen_ai.response.finish_reasons"] == [completion.choices[0].finish_reason]
    assert found["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens
    found = attributes(request_span(spans, responses_id))  # Responses client, translated to Chat
    assert found["keystile.client_format"] == "responses" and found["gen_ai.request.stream"] is True
    assert (found["gen_ai.response.id"], found["gen_ai.response.model"]) == (final.id, final.model)
    assert found["gen_ai.response.finish_reasons"] == [final.status] == ["completed"]
    assert found["gen_ai.usage.output_tokens"] == final.usage.output_tokens

    assert key.encode() not in receiver.raw() and PROMPT.encode() not in receiver.raw()


def test_hostile_trace_headers_start_a_new_trace_and_change_nothing_else(gateway, receiver):
    key = gateway.create_key(key_alias="tracing-hostile")
    ids = []
    for traceparent, tracestate in (
        ("x" * 10_000, "y" * 10_000),  # far past any real header (within max_header_bytes)
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "=,=,"),  # all-zero trace id: invalid
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a=b"),  # version ff: invalid
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", "\u00e9=1"),  # version 00 has four fields
    ):
        response = httpx.post(
            f"{gateway.url}/v1/messages",
            json={"model": "claude-test", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-api-key": key, "traceparent": traceparent.encode(), "tracestate": tracestate.encode()},
            timeout=10,
        )
        assert response.status_code == 200
        ids.append(response.headers["x-keystile-request-id"])
    spans = receiver.wait_for(lambda spans: all(request_span(spans, i) for i in ids))
    for request_id in ids:
        span = request_span(spans, request_id)
        assert span.trace_id.hex() != TRACE_ID and not span.parent_span_id and span.trace_state == ""


@pytest.fixture()
def other_receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    yield server
    server.stop()


def test_a_clean_stop_exports_the_spans_still_queued(upstream, other_receiver):
    # the batch processor's default delay (5 s) is longer than this gateway lives: only the stop exports
    extra = f"otel:\n  enabled: true\n  endpoint: {other_receiver.url}\n"
    gateway = GatewayProcess(standard_config(upstream.url, extra=extra), env={"OTEL_BSP_SCHEDULE_DELAY": "60000"})
    with gateway:
        key = gateway.create_key()
        response = httpx.post(
            f"{gateway.url}/v1/messages", json={"model": "claude-test", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-api-key": key}, timeout=10,
        )
        assert response.status_code == 200
        request_id = response.headers["x-keystile-request-id"]
        assert other_receiver.spans() == []
    assert gateway.proc is None  # stopped with SIGTERM
    assert request_span([s for _, s in other_receiver.spans()], request_id) is not None


def test_tracing_off_exports_nothing_and_never_imports_opentelemetry(upstream, other_receiver):
    # The standard variables point at a live receiver; without otel.enabled keystile must not care.
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": other_receiver.url, "PYTHONPROFILEIMPORTTIME": "1"}
    gateway = GatewayProcess(standard_config(upstream.url), env=env)
    with gateway:
        key = gateway.create_key()
        for model in ("claude-test", "gpt-test"):
            response = httpx.post(
                f"{gateway.url}/v1/messages", json={"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
                headers={"x-api-key": key, "traceparent": TRACEPARENT}, timeout=10,
            )
            assert response.status_code == 200
    log = gateway.log()  # the stop above would have exported anything queued
    assert "import time:" in log and "keystile.server.app" in log  # Python's import log is there …
    assert "opentelemetry" not in log and "keystile.tracing" not in log and "keystile.server.traced" not in log  # … without them
    assert other_receiver.bodies == []
