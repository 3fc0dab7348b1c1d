"""OpenAI Responses usage: the two conversions and the meter of pass-through Responses streams.

The streams are written by hand in the shape of OpenAI's documented events; the expected
counts are worked out by hand from Responses' semantics (``input_tokens`` includes cached
tokens, ``output_tokens`` includes reasoning tokens).
"""

from __future__ import annotations

import json
import random

import pytest
from openai.types.responses import ResponseUsage

from keystile.accounting import meters
from keystile.accounting.meters import ResponsesStreamMeter, usage_from_response
from keystile.accounting.usage import Usage, usage_from_responses, usage_to_responses
from keystile.apiformat import ApiFormat
from keystile.sse import SSEParser, encode_event


def compact(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# --- conversions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        # 1,000 input of which 800 read from the cache; 50 output of which 30 reasoning
        ({"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 800}, "output_tokens": 50,
          "output_tokens_details": {"reasoning_tokens": 30}, "total_tokens": 1050}, Usage(200, 50, 800, 0)),
        # the newer cache-write count is also part of input_tokens
        ({"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 800, "cache_write_tokens": 150}, "output_tokens": 5,
          "total_tokens": 1005}, Usage(50, 5, 800, 150)),
        ({"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}, Usage(12, 3, 0, 0)),
        # nonsense never goes negative or raises
        ({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 50}, "output_tokens": -4}, Usage(0, 0, 50, 0)),
        ({"input_tokens": "12", "input_tokens_details": [], "output_tokens": True}, Usage()),
        (None, Usage()),
        ([], Usage()),
    ],
)
def test_usage_from_responses(usage, expected: Usage) -> None:
    assert usage_from_responses(usage) == expected


def test_usage_to_responses_counts_cached_tokens_inside_input() -> None:
    out = usage_to_responses(Usage(input_tokens=25, output_tokens=9, cache_read_tokens=5000, cache_write_tokens=1000))
    parsed = ResponseUsage.model_validate(out)
    assert parsed.input_tokens == 6025
    assert parsed.input_tokens_details.cached_tokens == 5000
    assert parsed.input_tokens_details.cache_write_tokens == 1000
    assert parsed.output_tokens == 9 and parsed.output_tokens_details.reasoning_tokens == 0
    assert parsed.total_tokens == 6034
    assert usage_from_responses(out) == Usage(25, 9, 5000, 1000)


# --- the meter ----------------------------------------------------------------------------

RESPONSE = {"id": "resp_1", "object": "response", "created_at": 1741476542, "model": "gpt-5-2026-01-01", "output": [],
            "status": "in_progress", "usage": None}
COMPLETED_USAGE = {"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1024}, "output_tokens": 300,
                   "output_tokens_details": {"reasoning_tokens": 256}, "total_tokens": 1500}
BODY = [
    {"type": "response.created", "sequence_number": 0, "response": RESPONSE},
    {"type": "response.in_progress", "sequence_number": 1, "response": RESPONSE},
    {"type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
     "item": {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}},
    {"type": "response.output_text.delta", "sequence_number": 3, "item_id": "msg_1", "output_index": 0, "content_index": 0,
     "delta": "Hi", "logprobs": []},
    # text that mentions the terminal events and usage must not confuse anything
    {"type": "response.output_text.delta", "sequence_number": 4, "item_id": "msg_1", "output_index": 0, "content_index": 0,
     "delta": '"response.completed" {"usage": {"input_tokens": 999999}} "error"', "logprobs": []},
]


def terminal(kind: str, **response) -> dict:
    return {"type": kind, "sequence_number": 9, "response": {**RESPONSE, "status": kind.removeprefix("response."), **response}}


def stream(events: list[dict], *, with_event_names: bool = True) -> bytes:
    return b"".join(encode_event(compact(e), e["type"] if with_event_names else None) for e in events)


def run(raw: bytes, split: int = 4096) -> ResponsesStreamMeter:
    parser = SSEParser()
    meter = ResponsesStreamMeter()
    for start in range(0, len(raw), split):
        for event in parser.feed(raw[start:start + split]):
            meter.observe(event.event, event.data)
    return meter


@pytest.mark.parametrize("split", [1, 7, 4096])
@pytest.mark.parametrize("with_event_names", [True, False])
def test_completed_stream(split: int, with_event_names: bool) -> None:
    meter = run(stream([*BODY, terminal("response.completed", usage=COMPLETED_USAGE)], with_event_names=with_event_names), split)
    assert meter.usage == Usage(176, 300, 1024, 0)
    assert meter.finished and meter.status == "completed" and meter.error is None and meter.incomplete_reason is None
    assert meter.model == "gpt-5-2026-01-01"


def test_cut_stream_is_not_finished() -> None:
    meter = run(stream(BODY))
    assert not meter.finished and meter.status is None and meter.usage == Usage() and meter.error is None
    assert meter.model == "gpt-5-2026-01-01"  # from response.created


def test_incomplete_stream_is_finished_without_error() -> None:
    meter = run(stream([*BODY, terminal("response.incomplete", usage=COMPLETED_USAGE, incomplete_details={"reason": "max_output_tokens"})]))
    assert meter.finished and meter.status == "incomplete" and meter.incomplete_reason == "max_output_tokens"
    assert meter.error is None and meter.usage.output_tokens == 300


def test_failed_stream_carries_its_error() -> None:
    failed = terminal("response.failed", error={"code": "server_error", "message": "The model failed to generate a response."},
                      usage={"input_tokens": 40, "output_tokens": 2, "total_tokens": 42})
    meter = run(stream([*BODY, {"type": "error", "sequence_number": 8, "code": "server_error", "message": "boom", "param": None}, failed]))
    assert meter.finished and meter.status == "failed"
    assert meter.error == "The model failed to generate a response."
    assert meter.usage == Usage(40, 2, 0, 0)  # what was used before the failure is still charged


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"type": "error", "sequence_number": 3, "code": "rate_limit_exceeded", "message": "Slow down", "param": None}, "Slow down"),
        ({"type": "error", "sequence_number": 3, "code": "server_error", "message": None}, "server_error"),
        ({"type": "error", "error": {"type": "server_error", "message": "nested"}}, "nested"),
        ({"type": "error"}, "error"),
    ],
)
def test_error_event(event: dict, message: str) -> None:
    meter = run(stream([BODY[0], event]))
    assert meter.error == message and not meter.finished


def test_only_lifecycle_events_are_parsed(monkeypatch) -> None:
    parsed: list[bytes] = []
    real = meters._loads

    def counting(data: bytes):
        parsed.append(data)
        return real(data)

    monkeypatch.setattr(meters, "_loads", counting)
    deltas = [BODY[3]] * 50
    run(stream([*BODY, *deltas, terminal("response.completed", usage=COMPLETED_USAGE)]))
    assert len(parsed) == 2  # response.created and response.completed


GARBAGE = [b"", b"null", b"[]", b"{", b"not json", b"\xff\xfe", b'{"response": []}', b'{"response": {"usage": [1]}}',
           b'{"response": {"usage": {"input_tokens": "9"}, "model": 5}}', b'{"type": "error", "message": 7}',
           b'{"response": {"incomplete_details": "x", "error": "y"}}', b'"response.completed"']


@pytest.mark.parametrize("data", GARBAGE)
@pytest.mark.parametrize("event", ["response.created", "response.completed", "response.incomplete", "response.failed", "error", None])
def test_garbage_never_raises(event, data: bytes) -> None:
    meter = ResponsesStreamMeter()
    meter.observe(event, data)
    assert meter.usage == Usage()


def test_random_bytes_never_raise() -> None:
    rng = random.Random(11)
    meter = ResponsesStreamMeter()
    for _ in range(2000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        meter.observe(rng.choice(["response.completed", "response.failed", "error", None]), data)


def test_usage_of_a_whole_responses_body() -> None:
    body = compact({**RESPONSE, "status": "completed", "usage": COMPLETED_USAGE})
    assert usage_from_response(body, ApiFormat.RESPONSES) == Usage(176, 300, 1024, 0)
