"""Tracing: the ``otel:`` settings, the span attributes of a finished request, and the spans written.

Expected values are worked by hand from OpenTelemetry's GenAI semantic conventions (attribute
names, ``gen_ai.provider.name`` values, span name ``{operation} {model}``), from W3C Trace
Context's own example ``traceparent``, and from the answers each provider documents.
"""

from __future__ import annotations

import importlib.util
import textwrap

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from keystile.accounting.usage import Usage
from keystile.apiformat import ApiFormat
from keystile.config import ConfigError, Settings, load_settings
from keystile.config.model import Deployment, OtelSettings
from keystile.providers.base import Operation
from keystile.tracing.record import (
    AnswerFacts,
    AttemptTrace,
    RequestTrace,
    answer_facts,
    attempt_attributes,
    provider_name,
    request_attributes,
    request_parameters,
)
from keystile.tracing.spans import Tracing

MODELS = "models:\n  - {name: claude, provider: anthropic, api_key: sk-ant-x}\n"
LITELLM_MODELS = "model_list:\n  - model_name: claude\n    litellm_params: {model: anthropic/claude-sonnet-4-5, api_key: sk-ant-x}\n"


def load(tmp_path, text: str, env: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "keystile.yaml"
    path.write_text(textwrap.dedent(text))
    return load_settings(str(path), env=env or {})


# --- the otel: settings --------------------------------------------------------------------------


def test_tracing_is_off_unless_enabled_and_defaults_to_a_local_collector(tmp_path):
    otel = load(tmp_path, MODELS).otel
    assert otel.enabled is False
    assert otel.endpoint == "http://localhost:4318/v1/traces"  # OTLP/HTTP's default port and traces path
    assert (otel.service_name, otel.sample_rate, otel.attempt_spans, otel.headers) == ("keystile", 1.0, True, ())


def test_otel_section_endpoint_headers_service_name_and_sample_rate(tmp_path):
    settings = load(
        tmp_path,
        MODELS
        + textwrap.dedent("""\
        otel:
          enabled: true
          endpoint: https://collector.example:4318/
          headers: {x-honeycomb-team: "${HONEYCOMB_KEY}"}
          service_name: gateway-eu
          sample_rate: 0.25
          attempt_spans: false
        """),
        env={"HONEYCOMB_KEY": "hc-secret-123"},
    )
    otel = settings.otel
    assert otel.enabled
    assert otel.endpoint == "https://collector.example:4318/v1/traces"
    assert otel.headers == (("x-honeycomb-team", "hc-secret-123"),)
    assert (otel.service_name, otel.sample_rate, otel.attempt_spans) == ("gateway-eu", 0.25, False)
    assert "hc-secret-123" not in repr(otel) and "x-honeycomb-team" in repr(otel)
    assert not settings.warnings


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("endpoint: http://c:4318/v1/traces", "http://c:4318/v1/traces"),  # already the traces URL: kept
        ("endpoint: http://c:4318/api/public/otel", "http://c:4318/api/public/otel/v1/traces"),  # a base with a path
        ("traces_endpoint: https://ingest.example/v2/trace/otlp", "https://ingest.example/v2/trace/otlp"),  # as written
    ],
)
def test_endpoint_is_a_base_url_and_traces_endpoint_is_used_as_written(tmp_path, section, expected):
    assert load(tmp_path, MODELS + f"otel:\n  {section}\n").otel.endpoint == expected


def test_the_standard_otel_environment_variables_fill_what_the_section_leaves_out(tmp_path):
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Basic%20dXNlcjpwYXNz,x-tenant=blue",
        "OTEL_SERVICE_NAME": "llm-gateway",
    }
    otel = load(tmp_path, MODELS + "otel: {enabled: true, headers: {x-tenant: green}}\n", env).otel
    assert otel.endpoint == "http://otel-collector:4318/v1/traces"
    assert dict(otel.headers) == {"authorization": "Basic dXNlcjpwYXNz", "x-tenant": "green"}  # the section wins per header
    assert otel.service_name == "llm-gateway"
    traces = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318/custom", **env}
    assert load(tmp_path, MODELS + "otel: {enabled: true}\n", traces).otel.endpoint == "http://t:4318/custom"
    written = load(tmp_path, MODELS + "otel: {enabled: true, endpoint: 'http://mine:4318', service_name: gw}\n", env).otel
    assert (written.endpoint, written.service_name) == ("http://mine:4318/v1/traces", "gw")


def test_a_bad_otel_variable_matters_only_when_tracing_is_on(tmp_path):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"}  # set for another program
    assert load(tmp_path, MODELS, env).otel.enabled is False
    with pytest.raises(ConfigError) as info:
        load(tmp_path, MODELS + "otel: {enabled: true}\n", env)
    assert "http:// or https://" in info.value.problems[0] and "collector:4317" in info.value.problems[0]


def test_litellm_otel_variables_are_honoured_too(tmp_path):
    # LiteLLM's own names for the same thing (its otel callback reads them)
    env = {"OTEL_ENDPOINT": "http://jaeger:4318/v1/traces", "OTEL_HEADERS": "api-key=abc"}
    otel = load(tmp_path, MODELS + "otel: {enabled: true}\n", env).otel
    assert otel.endpoint == "http://jaeger:4318/v1/traces" and otel.headers == (("api-key", "abc"),)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("sample_rate: 1.5", "between 0 and 1"),
        ("sample_rate: -0.1", "at least 0"),
        ("endpoint: collector:4318", "http:// or https://"),
        ("headers: [a, b]", "expected a mapping"),
        ("enabled: maybe", "true or false"),
    ],
)
def test_bad_otel_values_are_problems_with_their_line(tmp_path, section, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, MODELS + f"otel:\n  {section}\n")
    [problem] = info.value.problems
    assert "keystile.yaml:4" in problem and message in problem


def test_unknown_otel_setting_is_warned_about(tmp_path):
    settings = load(tmp_path, MODELS + "otel: {exporter: zipkin}\n")
    assert any("otel.exporter" in w and "unknown setting" in w for w in settings.warnings)


def test_a_grpc_protocol_in_the_environment_is_warned_about(tmp_path):
    settings = load(tmp_path, MODELS + "otel: {enabled: true}\n", {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert any("http/protobuf only" in w and "4318" in w for w in settings.warnings)


def test_litellm_callbacks_otel_turns_tracing_on_without_a_warning(tmp_path):
    text = LITELLM_MODELS + "litellm_settings:\n  callbacks: [\"otel\"]\n"
    settings = load(tmp_path, text, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert settings.otel.enabled and settings.otel.endpoint == "http://c:4318/v1/traces"
    assert not settings.warnings


def test_litellm_keystile_section_configures_otel_and_wins_over_callbacks(tmp_path):
    text = LITELLM_MODELS + "litellm_settings:\n  callbacks: [otel]\nkeystile:\n  otel: {enabled: false, service_name: x}\n"
    assert load(tmp_path, text).otel.enabled is False
    text = LITELLM_MODELS + "keystile:\n  otel: {enabled: true, endpoint: 'http://c:4318'}\n"
    otel = load(tmp_path, text).otel
    assert otel.enabled and otel.endpoint == "http://c:4318/v1/traces"


def test_other_litellm_callbacks_are_each_warned_about(tmp_path):
    text = LITELLM_MODELS + "litellm_settings:\n  callbacks: [otel, langfuse]\n  success_callback: [datadog]\n"
    settings = load(tmp_path, text)
    assert settings.otel.enabled
    assert len(settings.warnings) == 2
    assert any("'langfuse'" in w and "litellm_settings.callbacks" in w for w in settings.warnings)
    assert any("'datadog'" in w and "litellm_settings.success_callback" in w for w in settings.warnings)


def test_enabled_without_the_sdk_installed_is_a_clear_problem(tmp_path, monkeypatch):
    real = importlib.util.find_spec

    def without_opentelemetry(name, *args):
        if name.startswith("opentelemetry"):
            return None
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_opentelemetry)
    with pytest.raises(ConfigError) as info:
        load(tmp_path, MODELS + "otel: {enabled: true}\n")
    [problem] = info.value.problems
    assert "otel.enabled" in problem and "pip install 'keystile[otel]'" in problem
    assert load(tmp_path, MODELS + "otel: {enabled: false}\n").otel.enabled is False  # off: not even looked for


# --- attributes ----------------------------------------------------------------------------------

ANTHROPIC = Deployment("claude", "anthropic", "claude-sonnet-4-5-20250929", id="claude#0", api_base="https://api.anthropic.com")
GROQ = Deployment("llama", "openai", "llama-3.3-70b-versatile", id="llama#0", api_base="https://api.groq.com/openai/v1")
AZURE = Deployment("gpt", "azure", "my-gpt4o", id="gpt#0", api_base="https://res.openai.azure.com")
LOCAL = Deployment("local", "openai", "qwen", id="local#0", api_base="http://127.0.0.1:8000/v1")


@pytest.mark.parametrize(
    ("deployment", "expected"),
    [
        (ANTHROPIC, "anthropic"),
        (GROQ, "groq"),
        (AZURE, "azure.ai.openai"),
        (LOCAL, "openai"),
        (Deployment("m", "mock", "m", id="m#0"), "keystile.mock"),
        (Deployment("b", "bedrock", "anthropic.claude", id="b#0"), "aws.bedrock"),
        (Deployment("v", "vertex_ai", "claude", id="v#0"), "gcp.vertex_ai"),
        (Deployment("g", "gemini", "gemini-2.5-pro", id="g#0"), "gcp.gemini"),
    ],
)
def test_provider_names_are_the_conventions_well_known_values(deployment, expected):
    assert provider_name(deployment) == expected


@pytest.mark.parametrize(
    ("client", "body", "expected"),
    [
        (ApiFormat.ANTHROPIC, {"max_tokens": 1024, "temperature": 0.7, "top_k": 40, "messages": []},
         {"gen_ai.request.max_tokens": 1024, "gen_ai.request.temperature": 0.7, "gen_ai.request.top_k": 40}),
        (ApiFormat.OPENAI, {"max_completion_tokens": 500, "max_tokens": 9, "top_p": 0.9, "n": 2, "seed": 7, "temperature": True},
         {"gen_ai.request.max_tokens": 500, "gen_ai.request.top_p": 0.9, "gen_ai.request.choice.count": 2, "gen_ai.request.seed": 7}),
        (ApiFormat.OPENAI, {"max_tokens": 9, "n": 1, "frequency_penalty": 0.5, "presence_penalty": -0.5},
         {"gen_ai.request.max_tokens": 9, "gen_ai.request.frequency_penalty": 0.5, "gen_ai.request.presence_penalty": -0.5}),
        (ApiFormat.RESPONSES, {"max_output_tokens": 256, "temperature": 0, "input": "hi"},
         {"gen_ai.request.max_tokens": 256, "gen_ai.request.temperature": 0}),
        (ApiFormat.GEMINI, {"generationConfig": {"maxOutputTokens": 100, "temperature": 1.0, "topP": 0.95, "topK": 64}},
         {"gen_ai.request.max_tokens": 100, "gen_ai.request.temperature": 1.0, "gen_ai.request.top_p": 0.95,
          "gen_ai.request.top_k": 64}),
        (ApiFormat.ANTHROPIC, {"max_tokens": "1024", "temperature": "hot", "stop_sequences": ["secret"]}, {}),
        (ApiFormat.GEMINI, {"generationConfig": "nonsense"}, {}),
    ],
)
def test_request_parameters_copy_numbers_only(client, body, expected):
    assert request_parameters(client, body) == expected


def finished(**overrides) -> RequestTrace:
    """A streamed Messages request that failed once (503) on its first attempt and was served by the second."""
    first = AttemptTrace(ANTHROPIC, 0.0625, 0.25, "503")
    second = AttemptTrace(ANTHROPIC, 0.5, 1.0, None, first_chunk=0.75)
    values = dict(
        client=ApiFormat.ANTHROPIC, operation=Operation.GENERATE, route="/v1/messages", started=1000.0, t0=0.0, end=1.125,
        status=200, requested_model="claude", stream=True, body={"max_tokens": 64, "temperature": 0.5},
        request_id="req_abc", key_alias="ci-bot", user_id="alice", team_id="search", group="claude", deployment=ANTHROPIC,
        attempts=[first, second], usage=Usage(10, 20, 30, 40), cost=0.0123,
        answer=AnswerFacts("claude-sonnet-4-5-20250929", "msg_01", ["end_turn"]),
    )
    values.update(overrides)
    return RequestTrace(**values)


def test_request_attributes_of_a_finished_request():
    assert request_attributes(finished()) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.system": "anthropic",
        "gen_ai.request.model": "claude",
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.stream": True,
        "gen_ai.response.model": "claude-sonnet-4-5-20250929",
        "gen_ai.response.id": "msg_01",
        "gen_ai.response.finish_reasons": ["end_turn"],
        "gen_ai.usage.input_tokens": 80,  # 10 uncached + 30 cache reads + 40 cache writes: every input token
        "gen_ai.usage.output_tokens": 20,
        "gen_ai.usage.cache_read.input_tokens": 30,
        "gen_ai.usage.cache_creation.input_tokens": 40,
        "gen_ai.response.time_to_first_chunk": 0.75,
        "http.request.method": "POST",
        "http.response.status_code": 200,
        "url.path": "/v1/messages",
        "keystile.client_format": "anthropic",
        "keystile.request_id": "req_abc",
        "keystile.key_alias": "ci-bot",
        "keystile.user_id": "alice",
        "keystile.team_id": "search",
        "keystile.model_group": "claude",
        "keystile.deployment": "claude#0",
        "keystile.attempts": 2,
        "keystile.cost_usd": 0.0123,
    }


def test_a_refused_request_has_its_status_as_error_type_and_nothing_it_did_not_do():
    trace = RequestTrace(ApiFormat.OPENAI, Operation.GENERATE, "/v1/chat/completions", 1000.0, 0.0, 0.001, 429,
                         requested_model="gpt", key_alias="k1")
    assert request_attributes(trace) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt",
        "error.type": "429",
        "http.request.method": "POST",
        "http.response.status_code": 429,
        "url.path": "/v1/chat/completions",
        "keystile.client_format": "openai",
        "keystile.key_alias": "k1",
        "keystile.attempts": 0,
    }


def test_what_a_client_wrote_in_model_or_path_is_cut_short():
    trace = finished(requested_model="m" * 5000, route="/v1beta/models/" + "m" * 5000 + ":generateContent", deployment=None, attempts=[])
    found = request_attributes(trace)
    assert found["gen_ai.request.model"] == "m" * 256 and len(found["url.path"]) == 256


def test_gemini_clients_generate_content_and_embeddings_are_embeddings():
    gemini = finished(client=ApiFormat.GEMINI, body={}, stream=False)
    assert request_attributes(gemini)["gen_ai.operation.name"] == "generate_content"
    embeddings = finished(client=ApiFormat.OPENAI, operation=Operation.EMBEDDINGS, body={}, stream=False, answer=None)
    assert request_attributes(embeddings)["gen_ai.operation.name"] == "embeddings"


def test_attempt_attributes_name_the_deployment_and_how_it_ended():
    trace = finished()
    failed, served = trace.attempts
    assert attempt_attributes(trace, failed, 1) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.system": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5-20250929",
        "gen_ai.request.stream": True,
        "server.address": "api.anthropic.com",
        "server.port": 443,
        "error.type": "503",
        "http.response.status_code": 503,
        "keystile.deployment": "claude#0",
        "keystile.attempt": 1,
    }
    served_attributes = attempt_attributes(trace, served, 2)
    assert "error.type" not in served_attributes and served_attributes["gen_ai.response.time_to_first_chunk"] == 0.25
    assert not any(name.startswith("gen_ai.usage") for name in served_attributes)  # counted once, on the request
    timeout = attempt_attributes(trace, AttemptTrace(LOCAL, 0.0, 1.0, "UpstreamTimeout"), 1)
    assert timeout["error.type"] == "UpstreamTimeout" and "http.response.status_code" not in timeout
    assert (timeout["server.address"], timeout["server.port"]) == ("127.0.0.1", 8000)


# Answers as the providers document them, with a tool call whose input has keys named like the
# fields read (they must not be taken for the answer's own).
ANSWERS = [
    ({"id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
      "content": [{"type": "tool_use", "id": "toolu_01", "name": "f", "input": {"model": "SECRET", "id": "SECRET", "stop_reason": "SECRET"}}],
      "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 2095, "output_tokens": 503}},
     AnswerFacts("claude-sonnet-4-5-20250929", "msg_013Zva2CMHLNnXjNJJKqJ2EF", ["tool_use"])),
    ({"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion", "created": 1741569952,
      "model": "gpt-4o-2024-08-06", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"},
                                                {"index": 1, "message": {"role": "assistant", "content": "Yo"}, "finish_reason": "length"}]},
     AnswerFacts("gpt-4o-2024-08-06", "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", ["stop", "length"])),
    ({"id": "resp_67ccd2bed1ec8190", "object": "response", "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"},
      "model": "gpt-4.1-2025-04-14", "output": [{"type": "message", "id": "msg_67cc", "content": []}]},
     AnswerFacts("gpt-4.1-2025-04-14", "resp_67ccd2bed1ec8190", ["max_output_tokens"])),
    ({"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}, "finishReason": "STOP", "index": 0}],
      "usageMetadata": {"promptTokenCount": 4}, "modelVersion": "gemini-2.5-flash", "responseId": "mKdLaM-6Hu2hz7IP"},
     AnswerFacts("gemini-2.5-flash", "mKdLaM-6Hu2hz7IP", ["STOP"])),
    ({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}], "model": "text-embedding-3-small"},
     AnswerFacts("text-embedding-3-small", None, [])),
]


@pytest.mark.parametrize(("answer", "expected"), ANSWERS)
def test_answer_facts_of_a_whole_answer(answer, expected):
    assert answer_facts(orjson.dumps(answer), [], stream=False) == expected


def sse(*events: tuple[str | None, dict | str]) -> bytes:
    out = b""
    for name, data in events:
        out += (f"event: {name}\n".encode() if name else b"") + b"data: " + (data.encode() if isinstance(data, str) else orjson.dumps(data)) + b"\n\n"
    return out


def test_answer_facts_of_streams_come_from_their_first_and_last_chunks():
    anthropic_head = sse(("message_start", {"type": "message_start", "message": {"id": "msg_1", "type": "message", "model": "claude-haiku-4-5", "content": []}}),
                         ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))
    anthropic_tail = [sse(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "model"}})),
                      sse(("message_delta", {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 5}}),
                          ("message_stop", {"type": "message_stop"}))]
    assert answer_facts(anthropic_head, anthropic_tail, stream=True) == AnswerFacts("claude-haiku-4-5", "msg_1", ["max_tokens"])

    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-mini"}
    chat_head = sse((None, {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}))
    chat_tail = [sse((None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})),
                 sse((None, {**chunk, "choices": [], "usage": {"prompt_tokens": 1}}), (None, "[DONE]"))]
    assert answer_facts(chat_head, chat_tail, stream=True) == AnswerFacts("gpt-4o-mini", "chatcmpl-1", ["tool_calls"])

    created = {"type": "response.created", "response": {"id": "resp_1", "object": "response", "status": "in_progress", "model": "gpt-5"}}
    completed = {"type": "response.completed", "response": {"id": "resp_1", "object": "response", "status": "completed", "model": "gpt-5"}}
    assert answer_facts(sse(("response.created", created)), [sse(("response.completed", completed))], stream=True) == AnswerFacts(
        "gpt-5", "resp_1", ["completed"]
    )

    gemini = {"candidates": [{"content": {"parts": [{"text": "x"}]}}], "modelVersion": "gemini-2.5-pro", "responseId": "r1"}
    last = {"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "MAX_TOKENS"}], "modelVersion": "gemini-2.5-pro"}
    assert answer_facts(sse((None, gemini)), [sse((None, last))], stream=True) == AnswerFacts("gemini-2.5-pro", "r1", ["MAX_TOKENS"])


def test_answer_facts_of_garbage_are_empty():
    assert answer_facts(b"not json", [], stream=False) == AnswerFacts()
    assert answer_facts(b"data: {broken\n\n", [b"event: x\n"], stream=True) == AnswerFacts()
    assert answer_facts(orjson.dumps({"model": "m" * 1000}), [], stream=False).model == "m" * 128


# --- spans ---------------------------------------------------------------------------------------

# W3C Trace Context's own example.
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_ID = 0x00F067AA0BA902B7
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def emitted(trace: RequestTrace, **settings) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    tracing = Tracing(OtelSettings(enabled=True, **settings), SimpleSpanProcessor(exporter))
    tracing.emit(trace)
    tracing.shutdown()
    return list(exporter.get_finished_spans())


def test_a_request_with_a_retry_is_a_server_span_with_one_client_span_per_attempt():
    spans = emitted(finished())
    [request] = [s for s in spans if s.kind is SpanKind.SERVER]
    attempts = sorted((s for s in spans if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time)
    assert len(spans) == 3 and len(attempts) == 2
    assert request.name == "chat claude"
    assert request.parent is None  # no traceparent: a new trace
    assert request.resource.attributes["service.name"] == "keystile"
    assert request.status.status_code is StatusCode.UNSET
    assert (request.start_time, request.end_time) == (1000 * 10**9, 1000 * 10**9 + 1_125_000_000)
    assert dict(request.attributes)["keystile.attempts"] == 2
    failed, served = attempts
    for span in attempts:
        assert span.name == "chat claude-sonnet-4-5-20250929"
        assert span.parent.span_id == request.context.span_id and span.context.trace_id == request.context.trace_id
    assert (failed.start_time, failed.end_time) == (1000 * 10**9 + 62_500_000, 1000 * 10**9 + 250_000_000)
    assert (served.start_time, served.end_time) == (1000 * 10**9 + 500_000_000, 1000 * 10**9 + 1_000_000_000)
    assert failed.status.status_code is StatusCode.ERROR and failed.attributes["error.type"] == "503"
    assert served.status.status_code is StatusCode.UNSET and "error.type" not in served.attributes


def test_the_clients_traceparent_is_continued():
    [request, *_] = [s for s in emitted(finished(traceparent=TRACEPARENT, tracestate="congo=t61rcWkgMzE")) if s.kind is SpanKind.SERVER]
    assert request.context.trace_id == TRACE_ID
    assert request.parent.span_id == PARENT_ID and request.parent.is_remote
    assert request.context.trace_state.get("congo") == "t61rcWkgMzE"


def test_a_malformed_traceparent_starts_a_new_trace():
    [request] = emitted(finished(traceparent="00-zz-not-a-trace-id-01", attempts=[]))
    assert request.parent is None and request.context.trace_id != TRACE_ID


def test_sampling_a_share_of_new_traces_but_following_the_clients_decision():
    assert emitted(finished(), sample_rate=0.0) == []
    assert len(emitted(finished(traceparent=TRACEPARENT), sample_rate=0.0)) == 3  # the client sampled it
    unsampled = TRACEPARENT[:-2] + "00"
    assert emitted(finished(traceparent=unsampled), sample_rate=1.0) == []


def test_attempt_spans_can_be_turned_off():
    [request] = emitted(finished(), attempt_spans=False)
    assert request.kind is SpanKind.SERVER


def test_server_errors_mark_the_span_failed_client_errors_only_say_their_type():
    [failed] = emitted(finished(status=502, attempts=[], answer=None))
    assert failed.status.status_code is StatusCode.ERROR and failed.attributes["error.type"] == "502"
    [refused] = emitted(finished(status=429, attempts=[], answer=None, deployment=None))
    assert refused.status.status_code is StatusCode.UNSET and refused.attributes["error.type"] == "429"
