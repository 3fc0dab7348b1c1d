"""Bedrock InvokeModel and Vertex rawPredict as formats: only the envelope changes, never a message.

Expected values come from what Claude Code 2.1.197 really sent in these modes (fixtures/clouds),
from the Anthropic SDK's own Bedrock stream decoder, and from botocore's event-stream parser.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from anthropic.lib.bedrock._stream_decoder import AWSEventStreamDecoder

from keystile.apiformat import ApiFormat
from keystile.eventstream import EventStreamParser
from keystile.formats import bedrock, vertex
from keystile.formats.base import ClientRequest
from keystile.providers import mock_replies
from keystile.providers.base import Operation
from keystile.providers.bedrock import with_betas
from keystile.server.routes import match_endpoint
from keystile.sse import SSEParser

FIXTURES = Path(__file__).parent / "fixtures" / "clouds"
BEDROCK_BODY = json.loads((FIXTURES / "claude-code-bedrock-invoke.json").read_text())
VERTEX_BODY = json.loads((FIXTURES / "claude-code-vertex-streamrawpredict.json").read_text())
CONTENT = ("messages", "system", "tools", "metadata", "max_tokens", "thinking")


def request(fmt: ApiFormat, body: dict, *, model: str, stream: bool, operation: Operation = Operation.GENERATE) -> ClientRequest:
    return ClientRequest(orjson.dumps(body), body, model, stream, b"", fmt, operation)


def test_claude_codes_bedrock_body_reaches_the_hub_with_every_message_untouched():
    req = request(ApiFormat.BEDROCK, BEDROCK_BODY, model="us.anthropic.claude-sonnet-4-5-20250929-v1:0", stream=True)
    bedrock.check_request(BEDROCK_BODY, Operation.GENERATE)
    hub = bedrock.to_hub(req, upstream_model="claude-sonnet-4-5-20250929", default_max_tokens=4096)
    assert {k: hub[k] for k in CONTENT} == {k: BEDROCK_BODY[k] for k in CONTENT}
    assert hub["model"] == "claude-sonnet-4-5-20250929" and hub["stream"] is True
    assert "anthropic_version" not in hub and "anthropic_beta" not in hub
    # and back into Bedrock's envelope, as Claude Code wrote it (its betas travel separately)
    again = bedrock.from_hub(hub, upstream_model="x", stream=True)
    assert again == {k: v for k, v in BEDROCK_BODY.items() if k != "anthropic_beta"}


def test_a_bedrock_client_keeps_its_own_body_and_its_betas_become_the_pipelines_header():
    req = request(ApiFormat.BEDROCK, BEDROCK_BODY, model="m", stream=True)
    assert bedrock.forward(req, "m") is BEDROCK_BODY
    seen = {b"anthropic-beta": b"claude-code-20250219", b"x-api-key": b"k"}
    headers = bedrock.headers_from_body(BEDROCK_BODY, seen)
    assert headers[b"anthropic-beta"] == b"interleaved-thinking-2025-05-14,tool-search-tool-2025-10-19"
    assert headers[b"x-api-key"] == b"k"
    assert bedrock.headers_from_body({"messages": []}, seen).get(b"anthropic-beta") is None


def test_betas_from_another_client_are_written_into_a_bedrock_body_only_where_bedrock_takes_them():
    body = orjson.dumps(bedrock.from_hub({"model": "m", "max_tokens": 5, "messages": []}, upstream_model="m", stream=False))
    header = b"claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,prompt-caching-scope-2026-01-05"
    written = json.loads(with_betas(body, header))
    assert written["anthropic_beta"] == ["claude-code-20250219", "interleaved-thinking-2025-05-14"]
    assert written["anthropic_version"] == "bedrock-2023-05-31" and written["max_tokens"] == 5
    assert with_betas(body, b"oauth-2025-04-20") == body and with_betas(body, None) == body


def test_claude_codes_vertex_body_reaches_the_hub_and_back_unchanged():
    req = request(ApiFormat.VERTEX, VERTEX_BODY, model="claude-sonnet-4-5@20250929", stream=True)
    vertex.check_request(VERTEX_BODY, Operation.GENERATE)
    hub = vertex.to_hub(req, upstream_model="claude-sonnet-4-5-20250929", default_max_tokens=4096)
    assert {k: hub[k] for k in CONTENT} == {k: VERTEX_BODY[k] for k in CONTENT}
    assert hub["model"] == "claude-sonnet-4-5-20250929" and hub["stream"] is True and "anthropic_version" not in hub
    assert vertex.from_hub(hub, upstream_model="claude-sonnet-4-5@20250929", stream=True) == VERTEX_BODY
    assert vertex.forward(req, "claude-sonnet-4-5@20250929") is VERTEX_BODY


def test_a_vertex_token_count_names_its_model_in_the_body():
    # AnthropicVertex's count_tokens: POST …/models/count-tokens:rawPredict with the model in the body
    body = {"model": "claude-haiku-4-5@20251001", "messages": [{"role": "user", "content": "hi"}], "anthropic_version": "vertex-2023-10-16"}
    endpoint = match_endpoint("/v1/projects/p/locations/global/publishers/anthropic/models/count-tokens:rawPredict")
    assert endpoint is not None and endpoint.operation is Operation.COUNT_TOKENS and endpoint.model is None
    hub = vertex.to_hub(request(ApiFormat.VERTEX, body, model=body["model"], stream=False, operation=Operation.COUNT_TOKENS),
                        upstream_model="claude-haiku-4-5@20251001", default_max_tokens=1)
    assert vertex.from_hub(hub, upstream_model="claude-haiku-4-5@20251001", stream=False) == body


@pytest.mark.parametrize(
    ("path", "fmt", "model", "stream"),
    [
        # the paths Claude Code 2.1.197 called (agent-traffic recordings), behind its base URLs' prefixes
        ("/bedrock/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke-with-response-stream", ApiFormat.BEDROCK,
         "us.anthropic.claude-sonnet-4-5-20250929-v1:0", True),
        ("/bedrock/model/us.anthropic.claude-opus-4-6-v1/invoke", ApiFormat.BEDROCK, "us.anthropic.claude-opus-4-6-v1", False),
        ("/model/global.anthropic.claude-haiku-4-5-20251001-v1:0/invoke", ApiFormat.BEDROCK,
         "global.anthropic.claude-haiku-4-5-20251001-v1:0", False),
        ("/gw/bedrock/model/arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc/invoke", ApiFormat.BEDROCK,
         "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc", False),
        ("/vertex/v1/projects/my-project/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict",
         ApiFormat.VERTEX, "claude-sonnet-4-5@20250929", True),
        ("/v1/projects/p/locations/global/publishers/anthropic/models/claude-opus-4-1@20250805:rawPredict", ApiFormat.VERTEX,
         "claude-opus-4-1@20250805", False),
        ("/v1beta1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro:streamGenerateContent",
         ApiFormat.GEMINI, "gemini-2.5-pro", True),
    ],
)
def test_cloud_paths(path, fmt, model, stream):
    endpoint = match_endpoint(path)
    assert (endpoint.client, endpoint.model, endpoint.stream) == (fmt, model, stream)


@pytest.mark.parametrize("path", ["/bedrock/model//invoke", "/model/x/invoke/more", "/v1/projects/p/publishers/anthropic/models/m:rawPredict"])
def test_not_cloud_paths(path):
    assert match_endpoint(path) is None


def _sdk_events(frames: bytes) -> list[tuple[str, dict]]:
    """What the Anthropic SDK's Bedrock client (``AWSEventStreamDecoder``) reads from ``frames``."""
    return [(sse.event, json.loads(sse.data)) for sse in AWSEventStreamDecoder().iter_bytes(iter([frames]))]


def test_keystiles_bedrock_frames_read_as_the_same_events_in_the_anthropic_sdk():
    events = mock_replies.anthropic_stream({"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]})
    encoder = bedrock.Encoder()
    frames = b"".join(encoder.feed(e.event, e.data) for e in SSEParser().feed(b"".join(events)))
    assert encoder.finished
    assert _sdk_events(frames) == [(e.event, json.loads(e.data)) for e in SSEParser().feed(b"".join(events))]


@pytest.mark.parametrize(
    ("status", "exception", "anthropic_type"),
    [(429, "throttlingException", "rate_limit_error"), (529, "serviceUnavailableException", "api_error"),
     (400, "validationException", "invalid_request_error"), (502, "modelStreamErrorException", "api_error")],
)
def test_a_stream_failure_is_a_bedrock_exception_frame_and_reads_back_as_an_anthropic_error(status, exception, anthropic_type):
    frame = bedrock.stream_error(status, "it broke")
    [message] = EventStreamParser().feed(frame)
    assert message.headers[":message-type"] == "exception" and message.headers[":exception-type"] == exception
    # the Anthropic SDK turns it into an error event carrying the exception's name
    [(event, data)] = _sdk_events(frame)
    assert event == "error" and data["error"]["message"] == "it broke"
    # keystile's own parser turns it into an Anthropic error of the matching type
    [parsed] = bedrock.Parser().feed(frame)
    assert parsed.event == "error" and json.loads(parsed.data)["error"]["type"] == anthropic_type
    assert parsed.raw == frame


def test_a_chunk_that_is_not_base64_json_is_malformed():
    from keystile.eventstream import encode_message

    frame = encode_message({":event-type": "chunk", ":message-type": "event"}, b'{"bytes":"not base64!"}')
    with pytest.raises(ValueError):
        bedrock.Parser().feed(frame)


def test_a_bedrock_upstream_stream_decodes_to_hub_events():
    events = mock_replies.anthropic_stream({"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]})
    frames = b"".join(mock_replies.bedrock_frames(events))
    decoder = bedrock.Decoder("m")
    hub = b"".join(decoder.feed(e) for e in bedrock.Parser().feed(frames))
    original = [(e.event, json.loads(e.data)) for e in SSEParser().feed(b"".join(events))]
    decoded = [(e.event, json.loads(e.data)) for e in SSEParser().feed(hub)]
    # the same events; Bedrock adds its invocation metrics to message_stop
    assert [name for name, _ in decoded] == [name for name, _ in original]
    assert decoded[:-1] == original[:-1] and "amazon-bedrock-invocationMetrics" in decoded[-1][1]
    assert decoder.complete and decoder.usage.output_tokens == original[-2][1]["usage"]["output_tokens"]


def test_the_mocks_bedrock_stream_is_what_the_sdk_reads():
    events = mock_replies.anthropic_stream({"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]})
    read = _sdk_events(b"".join(mock_replies.bedrock_frames(events)))
    assert [name for name, _ in read] == [e.event for e in SSEParser().feed(b"".join(events))]
