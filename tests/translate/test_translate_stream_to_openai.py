"""MessagesStreamToChat: Anthropic SSE events → OpenAI chat.completion.chunk stream."""

from __future__ import annotations

import orjson
import pytest

from .translation_harness import openai_final_completion, openai_lines
from keystile.translate.stream_to_openai import MessagesStreamToChat


def message_start(input_tokens: int = 25, **usage) -> tuple[str, dict]:
    return "message_start", {"type": "message_start", "message": {
        "id": "msg_01XYZ", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1, **usage}}}


def start(index: int, block: dict) -> tuple[str, dict]:
    return "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, d: dict) -> tuple[str, dict]:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}


def stop(index: int) -> tuple[str, dict]:
    return "content_block_stop", {"type": "content_block_stop", "index": index}


def message_delta(stop_reason: str, output_tokens: int, **usage) -> tuple[str, dict]:
    return "message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": {"output_tokens": output_tokens, **usage}}


PING = ("ping", {"type": "ping"})
MESSAGE_STOP = ("message_stop", {"type": "message_stop"})


def text_events(*pieces: str) -> list[tuple[str, dict]]:
    return [start(0, {"type": "text", "text": ""}), *[delta(0, {"type": "text_delta", "text": p}) for p in pieces], stop(0)]


def run(events: list[tuple[str, dict]], *, include_usage: bool = True, finish: bool = False, **kwargs):
    translator = MessagesStreamToChat(include_usage=include_usage, **kwargs)
    out = b"".join(translator.feed(name, orjson.dumps(data)) for name, data in events)
    if finish:
        out += translator.finish()
    return translator, openai_lines(out)


def test_text_stream_chunks_usage_and_done() -> None:
    translator, lines = run([message_start(25), PING, *text_events("Hel", "lo"), PING, message_delta("end_turn", 9), MESSAGE_STOP])
    assert lines[-1] == "[DONE]"
    chunks = lines[:-1]
    assert {c["id"] for c in chunks} == {"chatcmpl-01XYZ"}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in chunks} == {"claude-sonnet-4-5-20250929"}
    assert len({c["created"] for c in chunks}) == 1
    assert chunks[0]["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}]
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:3]] == ["Hel", "lo"]
    assert chunks[3]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert chunks[4]["choices"] == [] and chunks[4]["usage"] == {"prompt_tokens": 25, "completion_tokens": 9, "total_tokens": 34}
    assert len(chunks) == 5  # pings produced nothing
    completion = openai_final_completion(lines)
    assert completion.choices[0].message.content == "Hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 25
    assert translator.finished and translator.feed("ping", b'{"type":"ping"}') == b"" and translator.finish() == b""


def test_without_include_usage_there_is_no_usage_chunk() -> None:
    translator, lines = run([message_start(), *text_events("x"), message_delta("end_turn", 3), MESSAGE_STOP], include_usage=False)
    assert all(line == "[DONE]" or line["choices"] for line in lines)
    assert translator.usage.output_tokens == 3 and translator.usage.input_tokens == 25


def test_tool_calls_are_numbered_by_call_not_by_block() -> None:
    events = [
        message_start(),
        *text_events("Let me check."),
        start(1, {"type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {}}),
        delta(1, {"type": "input_json_delta", "partial_json": ""}),
        delta(1, {"type": "input_json_delta", "partial_json": '{"city": '}),
        delta(1, {"type": "input_json_delta", "partial_json": '"Paris"}'}),
        stop(1),
        start(2, {"type": "tool_use", "id": "toolu_B", "name": "get_time", "input": {}}),
        delta(2, {"type": "input_json_delta", "partial_json": "{}"}),
        stop(2),
        message_delta("tool_use", 40),
        MESSAGE_STOP,
    ]
    _, lines = run(events)
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in lines[:-1] if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert calls[0] == {"index": 0, "id": "toolu_A", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    assert calls[1] == {"index": 0, "function": {"arguments": '{"city": '}}
    assert calls[3]["index"] == 1 and calls[3]["id"] == "toolu_B"
    completion = openai_final_completion(lines)
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.content == "Let me check."
    assert [(t.id, t.function.name, t.function.arguments) for t in message.tool_calls] == [
        ("toolu_A", "get_weather", '{"city": "Paris"}'),
        ("toolu_B", "get_time", "{}"),
    ]


def test_thinking_becomes_reasoning_content_and_thinking_blocks() -> None:
    events = [
        message_start(),
        start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, {"type": "thinking_delta", "thinking": "First, "}),
        delta(0, {"type": "thinking_delta", "thinking": "add."}),
        delta(0, {"type": "signature_delta", "signature": "sig-1"}),
        stop(0),
        start(1, {"type": "redacted_thinking", "data": "opaque"}),
        stop(1),
        start(2, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(2, {"type": "thinking_delta", "thinking": "Check."}),
        delta(2, {"type": "signature_delta", "signature": "sig-2"}),
        stop(2),
        *[(n, {**d, "index": 3}) for n, d in text_events("4")],
        message_delta("end_turn", 50),
        MESSAGE_STOP,
    ]
    _, lines = run(events)
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in lines[:-1] if c["choices"])
    assert reasoning == "First, add.Check."
    completion = openai_final_completion(lines)  # the SDK accumulator must merge thinking_blocks
    message = completion.choices[0].message.model_dump()
    assert message["content"] == "4"
    assert message["thinking_blocks"] == [
        {"index": 0, "type": "thinking", "thinking": "First, add.", "signature": "sig-1"},
        {"index": 1, "type": "redacted_thinking", "data": "opaque"},
        {"index": 2, "type": "thinking", "thinking": "Check.", "signature": "sig-2"},
    ]


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
     ("refusal", "content_filter"), ("pause_turn", "stop"), ("model_context_window_exceeded", "length")],
)
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    _, lines = run([message_start(), *text_events("x"), message_delta(stop_reason, 2), MESSAGE_STOP])
    assert openai_final_completion(lines).choices[0].finish_reason == finish


def test_cache_usage_and_repeated_input_in_message_delta() -> None:
    translator, lines = run([
        message_start(0, cache_creation_input_tokens=0, cache_read_input_tokens=0),
        *text_events("x"),
        message_delta("end_turn", 12, input_tokens=30, cache_read_input_tokens=2000, cache_creation_input_tokens=100),
        MESSAGE_STOP,
    ])
    usage = lines[-2]["usage"]
    assert usage == {"prompt_tokens": 2130, "completion_tokens": 12, "total_tokens": 2142, "prompt_tokens_details": {"cached_tokens": 2000}}
    assert (translator.usage.input_tokens, translator.usage.cache_read_tokens, translator.usage.cache_write_tokens) == (30, 2000, 100)


def test_message_start_cache_usage_survives_a_delta_without_it() -> None:
    translator, _ = run([message_start(10, cache_read_input_tokens=500), *text_events("x"), message_delta("end_turn", 3), MESSAGE_STOP])
    assert (translator.usage.input_tokens, translator.usage.cache_read_tokens, translator.usage.output_tokens) == (10, 500, 3)


def test_upstream_error_event_mid_stream() -> None:
    translator, lines = run([
        message_start(), *text_events("partial"),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        message_delta("end_turn", 3), MESSAGE_STOP,
    ])
    assert lines[-1] == {"error": {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded"}}
    assert "[DONE]" not in lines and translator.finished and translator.finish() == b""


def test_stream_ending_without_message_stop() -> None:
    translator, lines = run([message_start(7), *text_events("cut")], finish=True)
    assert lines[-1] == "[DONE]"
    assert lines[-3]["choices"][0]["finish_reason"] == "stop"
    assert lines[-2]["usage"]["prompt_tokens"] == 7
    assert openai_final_completion(lines).choices[0].message.content == "cut"
    assert translator.finish() == b""


def test_stream_ending_after_message_delta_sends_one_finish_chunk() -> None:
    _, lines = run([message_start(), *text_events("x"), message_delta("max_tokens", 3), message_delta("max_tokens", 4)], finish=True)
    finishes = [c["choices"][0]["finish_reason"] for c in lines[:-1] if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["length"] and lines[-2]["usage"]["completion_tokens"] == 4


def test_empty_upstream_still_closes_cleanly() -> None:
    translator = MessagesStreamToChat(include_usage=False, model="public")
    lines = openai_lines(translator.finish())
    assert lines[-1] == "[DONE]" and lines[0]["model"] == "public"
    openai_final_completion(lines)


def test_fail_is_an_in_band_openai_error() -> None:
    translator, _ = run([message_start(), *text_events("x")])
    assert openai_lines(translator.fail(504, "upstream timed out")) == [
        {"error": {"message": "upstream timed out", "type": "timeout_error", "param": None, "code": "upstream_timeout"}}
    ]
    assert translator.finished and translator.finish() == b"" and translator.fail(500, "x") == b""


def test_server_tool_blocks_and_unknown_events_are_skipped() -> None:
    _, lines = run([
        message_start(),
        start(0, {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}),
        delta(0, {"type": "input_json_delta", "partial_json": '{"query": "x"}'}),
        stop(0),
        start(1, {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}),
        stop(1),
        ("future_event", {"type": "future_event"}),
        *[(n, {**d, "index": 2}) for n, d in text_events("found")],
        delta(2, {"type": "citations_delta", "citation": {"type": "web_search_result_location"}}),
        message_delta("end_turn", 5),
        MESSAGE_STOP,
    ])
    message = openai_final_completion(lines).choices[0].message
    assert message.content == "found" and not message.tool_calls


def test_model_override_and_event_name_without_type() -> None:
    translator = MessagesStreamToChat(include_usage=True, model="public-alias")
    out = translator.feed("message_start", orjson.dumps(message_start()[1]))
    out += translator.feed("content_block_delta", b'{"index":0,"delta":{"type":"text_delta","text":"hi"}}')
    out += translator.feed(None, b"not json") + translator.feed("message_stop", b"{}")
    lines = openai_lines(out)
    assert {line["model"] for line in lines[:-1]} == {"public-alias"}
    assert openai_final_completion(lines).choices[0].message.content == "hi"
