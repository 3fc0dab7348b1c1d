"""Usage meters on pass-through streams, and usage of whole response bodies."""

from __future__ import annotations

import json
import random

import pytest

from keystile.accounting import meters
from keystile.accounting.meters import (
    AnthropicStreamMeter,
    OpenAIStreamMeter,
    is_usage_only_chunk,
    usage_from_response,
)
from keystile.accounting.usage import Usage
from keystile.apiformat import ApiFormat
from keystile.sse import SSEParser, encode_event


def compact(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@pytest.fixture
def parses(monkeypatch) -> list[bytes]:
    """Records every payload the meters parse, to check that the others are skipped."""
    seen: list[bytes] = []
    real = meters._loads

    def counting(data: bytes):
        seen.append(data)
        return real(data)

    monkeypatch.setattr(meters, "_loads", counting)
    return seen


# --- Anthropic ---------------------------------------------------------------------------

MESSAGE_START = {
    "type": "message_start",
    "message": {
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 25, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 5000,
                  "output_tokens": 1},
    },
}
BODY = [
    ("ping", {"type": "ping"}),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
    # text that mentions usage must not confuse anything
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": '{"usage": {"output_tokens": 999999}} message_delta'}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
]


def message_delta(usage: dict, stop_reason: str | None = "end_turn") -> tuple[str, dict]:
    return ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                              "usage": usage})


MESSAGE_STOP = ("message_stop", {"type": "message_stop"})


def anthropic_stream(events: list[tuple[str, dict]]) -> bytes:
    return b"".join(encode_event(compact(data), name) for name, data in events)


def run_anthropic(raw: bytes, *, split: int = 7, with_event_names: bool = True) -> AnthropicStreamMeter:
    """Feeds the stream through the real SSE framing, cut into ``split``-byte pieces."""
    meter = AnthropicStreamMeter()
    parser = SSEParser()
    for start in range(0, len(raw), split):
        for event in parser.feed(raw[start:start + split]):
            meter.observe(event.event if with_event_names else None, event.data)
    for event in parser.close():
        meter.observe(event.event if with_event_names else None, event.data)
    return meter


def u(input_: int, output: int, cache_read: int, cache_write: int) -> Usage:
    return Usage(input_tokens=input_, output_tokens=output, cache_read_tokens=cache_read, cache_write_tokens=cache_write)


ANTHROPIC_CASES = [
    (
        "complete stream",
        [("message_start", MESSAGE_START), *BODY, message_delta({"output_tokens": 15}), MESSAGE_STOP],
        u(25, 15, 5000, 1000), "end_turn",
    ),
    (
        "message_delta repeats input and cache fields: counted once",
        [("message_start", MESSAGE_START), *BODY,
         message_delta({"input_tokens": 25, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 5000,
                        "output_tokens": 15, "server_tool_use": {"web_search_requests": 1}}),
         MESSAGE_STOP],
        u(25, 15, 5000, 1000), "end_turn",
    ),
    (
        "server tools raise the cumulative input in message_delta",
        [("message_start", MESSAGE_START), *BODY,
         message_delta({"input_tokens": 4000, "cache_read_input_tokens": 5000, "output_tokens": 300}, "end_turn"),
         MESSAGE_STOP],
        u(4000, 300, 5000, 1000), "end_turn",
    ),
    (
        "several cumulative message_deltas: the last value, not the sum",
        [("message_start", MESSAGE_START), *BODY, message_delta({"output_tokens": 10}, None),
         message_delta({"output_tokens": 15}, "tool_use"), MESSAGE_STOP],
        u(25, 15, 5000, 1000), "tool_use",
    ),
    (
        "null fields in message_delta change nothing",
        [("message_start", MESSAGE_START),
         message_delta({"input_tokens": None, "cache_creation_input_tokens": None, "output_tokens": 15}),
         MESSAGE_STOP],
        u(25, 15, 5000, 1000), "end_turn",
    ),
    (
        "cut off after message_start: input and cache still count",
        [("message_start", MESSAGE_START), *BODY],
        u(25, 1, 5000, 1000), None,
    ),
    (
        "cut off before anything",
        [("ping", {"type": "ping"})],
        u(0, 0, 0, 0), None,
    ),
]


@pytest.mark.parametrize(("name", "events", "expected", "stop_reason"), ANTHROPIC_CASES, ids=[c[0] for c in ANTHROPIC_CASES])
@pytest.mark.parametrize("split", [1, 7, 4096])
def test_anthropic_meter(name, events, expected: Usage, stop_reason, split: int) -> None:
    meter = run_anthropic(anthropic_stream(events), split=split)
    assert meter.usage == expected
    assert meter.stop_reason == stop_reason
    assert meter.error is None


def test_anthropic_usage_is_current_after_every_event() -> None:
    events = [("message_start", MESSAGE_START), *BODY, message_delta({"output_tokens": 7}, None),
              message_delta({"output_tokens": 15}), MESSAGE_STOP]
    meter = AnthropicStreamMeter()
    seen = []
    for name, data in events:
        meter.observe(name, compact(data))
        seen.append(meter.usage.output_tokens)
    assert seen == [1, 1, 1, 1, 1, 1, 7, 15, 15]
    assert meter.model == "claude-sonnet-4-5-20250929"


def test_anthropic_meter_parses_only_events_that_carry_usage(parses: list[bytes]) -> None:
    events = [("message_start", MESSAGE_START), *BODY, *BODY, message_delta({"output_tokens": 15}), MESSAGE_STOP]
    meter = run_anthropic(anthropic_stream(events))
    assert meter.usage == u(25, 15, 5000, 1000)
    assert len(parses) == 2  # message_start and message_delta


def test_anthropic_meter_without_event_lines() -> None:
    events = [("message_start", MESSAGE_START), *BODY, message_delta({"output_tokens": 15}), MESSAGE_STOP]
    meter = run_anthropic(anthropic_stream(events), with_event_names=False)
    assert meter.usage == u(25, 15, 5000, 1000)
    assert meter.stop_reason == "end_turn"


def test_anthropic_error_event() -> None:
    events = [("message_start", MESSAGE_START), *BODY,
              ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})]
    meter = run_anthropic(anthropic_stream(events))
    assert meter.error == "Overloaded"
    assert meter.usage == u(25, 1, 5000, 1000)  # what was used before the error is still charged


@pytest.mark.parametrize(
    ("error", "message"),
    [({"type": "api_error"}, "api_error"), ("boom", "boom"), (None, "error"), (3, "error")],
)
def test_anthropic_error_event_of_odd_shape(error, message: str) -> None:
    meter = AnthropicStreamMeter()
    meter.observe("error", compact({"type": "error", "error": error}))
    assert meter.error == message


GARBAGE = [
    b"", b"null", b"[]", b"[1,2]", b"{", b"}", b"not json", b'"message_start"', b"\xff\xfe\x00",
    b'{"message": "x"}', b'{"message": {"usage": "nope"}}', b'{"message": {"usage": [1]}}',
    b'{"usage": {"output_tokens": "12"}}', b'{"usage": {"output_tokens": -5}}', b'{"usage": {"output_tokens": true}}',
    b'{"delta": [], "usage": null}', b'{"type": "message_delta", "delta": {"stop_reason": 5}}',
    b'{"error": {"message": ""}}', b"[DONE]", b'{"usage":{', b'"usage":{"x":1}',
]


@pytest.mark.parametrize("data", GARBAGE)
@pytest.mark.parametrize("event", ["message_start", "message_delta", "error", "ping", None])
def test_anthropic_garbage_never_raises(event, data: bytes) -> None:
    meter = AnthropicStreamMeter()
    meter.observe(event, data)
    assert meter.usage == Usage()
    assert meter.stop_reason is None


def test_anthropic_random_bytes_never_raise() -> None:
    rng = random.Random(7)
    meter = AnthropicStreamMeter()
    for _ in range(2000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        meter.observe(rng.choice(["message_start", "message_delta", "error", None]), data)


# --- OpenAI ------------------------------------------------------------------------------


def chunk(delta: dict | None = None, finish_reason: str | None = None, *, usage=..., choices=...) -> dict:
    obj = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1732000000, "model": "gpt-4o-2024-08-06",
           "system_fingerprint": "fp_1"}
    obj["choices"] = ([{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}]
                      if choices is ... else choices)
    if usage is not ...:
        obj["usage"] = usage
    return obj


FINAL_USAGE = {"prompt_tokens": 1200, "completion_tokens": 50, "total_tokens": 1250,
               "prompt_tokens_details": {"cached_tokens": 1000, "audio_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 0}}
USAGE_ONLY = chunk(choices=[], usage=FINAL_USAGE)
EXPECTED = u(200, 50, 1000, 0)

CONTENT = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hello"}),
    chunk({"content": 'say "usage": {"prompt_tokens": 9} and "finish_reason": "stop"'}),
    chunk({"content": "usage"}),
    chunk({"content": "finish_reason"}),
]


def with_null_usage(chunks: list[dict]) -> list[dict]:
    return [{**c, "usage": c.get("usage")} for c in chunks]


OPENAI_CASES = [
    ("include_usage stream", [*CONTENT, chunk(finish_reason="stop"), USAGE_ONLY], False, EXPECTED, "stop"),
    ("usage: null in every chunk", with_null_usage([*CONTENT, chunk(finish_reason="stop"), USAGE_ONLY]), False,
     EXPECTED, "stop"),
    ("usage: null, spaced JSON", with_null_usage([*CONTENT, chunk(finish_reason="length"), USAGE_ONLY]), True,
     EXPECTED, "length"),
    ("usage on the finish chunk", [*CONTENT, chunk(finish_reason="stop", usage=FINAL_USAGE)], False, EXPECTED, "stop"),
    ("no usage asked for", [*CONTENT, chunk(finish_reason="tool_calls")], False, Usage(), "tool_calls"),
    ("cut off mid-way", CONTENT[:3], False, Usage(), None),
    ("running totals in every chunk: the latest wins",
     [chunk({"content": "a"}, usage={"prompt_tokens": 1200, "completion_tokens": 1}),
      chunk({"content": "b"}, usage={"prompt_tokens": 1200, "completion_tokens": 2}),
      chunk(finish_reason="stop", usage=FINAL_USAGE)], False, EXPECTED, "stop"),
    ("running totals, cut off", [chunk({"content": "a"}, usage={"prompt_tokens": 1200, "completion_tokens": 1}),
                                 chunk({"content": "b"}, usage={"prompt_tokens": 1200, "completion_tokens": 2})],
     False, u(1200, 2, 0, 0), None),
    ("empty usage object changes nothing", [*CONTENT, chunk(finish_reason="stop"), USAGE_ONLY,
                                            chunk(choices=[], usage={})], False, EXPECTED, "stop"),
    ("groq puts usage in x_groq", [*CONTENT, {**chunk(finish_reason="stop"), "x_groq": {"id": "req_1", "usage": FINAL_USAGE}}],
     False, EXPECTED, "stop"),
]


def openai_stream(chunks: list[dict], spaced: bool) -> bytes:
    dump = (lambda o: json.dumps(o).encode()) if spaced else compact
    return b"".join(encode_event(dump(c)) for c in chunks) + encode_event(b"[DONE]")


def run_openai(raw: bytes, split: int = 7) -> OpenAIStreamMeter:
    meter = OpenAIStreamMeter()
    parser = SSEParser()
    for start in range(0, len(raw), split):
        for event in parser.feed(raw[start:start + split]):
            meter.observe(event.data)
    return meter


@pytest.mark.parametrize(("name", "chunks", "spaced", "expected", "finish"), OPENAI_CASES, ids=[c[0] for c in OPENAI_CASES])
@pytest.mark.parametrize("split", [1, 7, 4096])
def test_openai_meter(name, chunks, spaced: bool, expected: Usage, finish, split: int) -> None:
    meter = run_openai(openai_stream(chunks, spaced), split)
    assert meter.usage == expected
    assert meter.finish_reason == finish
    assert meter.error is None


@pytest.mark.parametrize("spaced", [False, True])
def test_openai_meter_parses_only_chunks_that_carry_something(parses: list[bytes], spaced: bool) -> None:
    chunks = with_null_usage([*CONTENT, *CONTENT, chunk(finish_reason="stop"), USAGE_ONLY])
    meter = run_openai(openai_stream(chunks, spaced))
    assert meter.usage == EXPECTED
    assert len(parses) == 2  # the finish chunk and the usage chunk
    assert meter.model == "gpt-4o-2024-08-06"


def test_openai_meter_with_obfuscation_field(parses: list[bytes]) -> None:
    chunks = [{**c, "obfuscation": "a1b2"} for c in [*CONTENT, chunk(finish_reason="stop")]] + [USAGE_ONLY]
    meter = run_openai(openai_stream(chunks, False))
    assert (meter.usage, meter.finish_reason, len(parses)) == (EXPECTED, "stop", 2)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"error": {"message": "The server had an error", "type": "server_error"}}, "The server had an error"),
        ({"error": {"type": "rate_limit_error"}}, "rate_limit_error"),
        ({"error": "upstream died"}, "upstream died"),
    ],
)
def test_openai_in_band_error(payload: dict, message: str) -> None:
    meter = run_openai(openai_stream([*CONTENT, payload], False))
    assert meter.error == message
    assert meter.finish_reason is None


OPENAI_GARBAGE = [
    b"", b"[DONE]", b"{", b"null", b"[]", b'"usage":{"prompt_tokens":1}', b'{"usage":{', b'{"usage":5}',
    b'{"usage":[1,2]}', b'{"usage":"x","choices":"y"}', b'{"choices":[1,null,"x",{"finish_reason":7}],"finish_reason":"x"}',
    b'{"finish_reason":"stop"}', b'{"usage":{"prompt_tokens":"10","completion_tokens":-1}}', b"\xff\xfe\"usage\":{}",
    b'{"error":null}', b'{"error"', b'{"model": 5, "usage": {"prompt_tokens": 0}}',
]


@pytest.mark.parametrize("data", OPENAI_GARBAGE)
def test_openai_garbage_never_raises(data: bytes) -> None:
    meter = OpenAIStreamMeter()
    meter.observe(data)
    assert meter.usage == Usage()
    assert meter.finish_reason is None
    assert is_usage_only_chunk(data) is False


def test_openai_random_bytes_never_raise() -> None:
    rng = random.Random(11)
    meter = OpenAIStreamMeter()
    alphabet = b'{}[]":,usagefinish_reasonerrornull 0123456789\\'
    for _ in range(3000):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(60)))
        meter.observe(data)
        is_usage_only_chunk(data)


USAGE_ONLY_CASES = [
    (compact(USAGE_ONLY), True),
    (json.dumps(USAGE_ONLY).encode(), True),
    (compact({**USAGE_ONLY, "obfuscation": "x"}), True),
    (compact(chunk({"content": "hi"})), False),
    (compact(chunk({"content": "hi"}, usage=None)), False),
    (compact(chunk(finish_reason="stop", usage=FINAL_USAGE)), False),  # usage on a chunk with a choice: keep it
    (compact(chunk(choices=[], usage=None)), False),
    (compact(chunk({"content": '"usage": {"prompt_tokens": 1}, "choices": []'})), False),
    (compact({"choices": [], "usage": {"prompt_tokens": 3}, "x": "usage"}), True),
    (b"[DONE]", False),
    (b"", False),
]


@pytest.mark.parametrize(("data", "expected"), USAGE_ONLY_CASES)
def test_is_usage_only_chunk(data: bytes, expected: bool) -> None:
    assert is_usage_only_chunk(data) is expected
    assert OpenAIStreamMeter.is_usage_only_chunk(data) is expected


# --- whole responses ---------------------------------------------------------------------

RESPONSES = [
    (ApiFormat.ANTHROPIC, {"id": "msg_1", "type": "message", "role": "assistant", "content": [],
                           "usage": {"input_tokens": 10, "output_tokens": 20, "cache_creation_input_tokens": 30,
                                     "cache_read_input_tokens": 40}}, u(10, 20, 40, 30)),
    (ApiFormat.OPENAI, {"id": "chatcmpl-1", "object": "chat.completion", "choices": [], "usage": FINAL_USAGE}, EXPECTED),
    (ApiFormat.OPENAI, {"object": "list", "data": [], "model": "text-embedding-3-small",
                        "usage": {"prompt_tokens": 8, "total_tokens": 8}}, u(8, 0, 0, 0)),
    (ApiFormat.OPENAI, {"usage": None}, Usage()),
    (ApiFormat.ANTHROPIC, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, Usage()),
]


@pytest.mark.parametrize(("fmt", "body", "expected"), RESPONSES)
def test_usage_from_response(fmt: ApiFormat, body: dict, expected: Usage) -> None:
    assert usage_from_response(compact(body), fmt) == expected


@pytest.mark.parametrize("body", [b"", b"null", b"[]", b"{bad", b'{"usage": "x"}', b"\xff\xfe", b'"usage"', b"12"])
@pytest.mark.parametrize("fmt", list(ApiFormat))
def test_usage_from_garbage_response(body: bytes, fmt: ApiFormat) -> None:
    assert usage_from_response(body, fmt) == Usage()
