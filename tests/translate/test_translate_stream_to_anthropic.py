"""ChatStreamToMessages: OpenAI chunk streams (split at awkward places) → Anthropic SSE."""

from __future__ import annotations

import orjson
import pytest

from .translation_harness import anthropic_events, anthropic_final_message, sse_chunks
from keystile.sse import SSEParser
from keystile.translate.stream_to_anthropic import ChatStreamToMessages

BASE = {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}


def chunk(delta: dict | None = None, finish: str | None = None, **extra) -> dict:
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {**BASE, "choices": [choice], **extra}


def usage_chunk(prompt: int, completion: int, cached: int = 0) -> dict:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return {**BASE, "choices": [], "usage": usage}


def tool(index: int, *, id: str | None = None, name: str | None = None, args: str | None = None) -> dict:
    fragment: dict = {"index": index}
    if id is not None:
        fragment["id"] = id
        fragment["type"] = "function"
    function = {}
    if name is not None:
        function["name"] = name
    if args is not None:
        function["arguments"] = args
    if function:
        fragment["function"] = function
    return chunk({"tool_calls": [fragment]})


def run(*chunks: dict | str, finish: bool = True, **kwargs) -> tuple[ChatStreamToMessages, list]:
    translator = ChatStreamToMessages(**kwargs)
    out = b"".join(translator.feed(data) for data in sse_chunks(*chunks))
    if finish:
        out += translator.finish()
    return translator, anthropic_events(out)


def names(events: list) -> list[str]:
    return [name for name, _ in events]


def test_text_stream_event_sequence_and_usage() -> None:
    translator, events = run(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
        usage_chunk(1200, 5, cached=1000),
        "[DONE]",
        finish=False,
    )
    assert names(events) == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["id"] == "msg_s1" and start["model"] == "gpt-4o" and start["content"] == []
    assert start["usage"]["output_tokens"] == 0
    assert events[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    delta = events[5][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"] == {"input_tokens": 200, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1000}
    message = anthropic_final_message(events)
    assert message.content[0].text == "Hello"
    assert message.usage.input_tokens == 200 and message.usage.cache_read_input_tokens == 1000
    assert translator.finished and translator.usage.output_tokens == 5 and translator.usage.cache_read_tokens == 1000
    assert translator.finish() == b"" and translator.feed(b"[DONE]") == b""


def test_reasoning_content_becomes_a_thinking_block_closed_before_text() -> None:
    _, events = run(
        chunk({"role": "assistant", "reasoning_content": "Let me "}),
        chunk({"reasoning_content": "think."}),
        chunk({"reasoning": None, "content": "Answer: 4"}),
        chunk({}, "stop"),
    )
    starts = [d["content_block"]["type"] for n, d in events if n == "content_block_start"]
    assert starts == ["thinking", "text"]
    first_stop = names(events).index("content_block_stop")
    assert first_stop < [i for i, (n, d) in enumerate(events) if n == "content_block_start"][1]
    message = anthropic_final_message(events)
    assert message.content[0].type == "thinking" and message.content[0].thinking == "Let me think."
    assert message.content[0].signature == ""
    assert message.content[1].text == "Answer: 4"


def test_tool_call_arguments_in_one_character_fragments() -> None:
    arguments = '{"city": "Paris", "unit": "C"}'
    chunks = [chunk({"role": "assistant", "content": None}), tool(0, id="call_1", name="get_weather", args="")]
    chunks += [tool(0, args=c) for c in arguments]
    chunks += [chunk({}, "tool_calls"), usage_chunk(30, 12)]
    _, events = run(*chunks, "[DONE]", finish=False)
    start = next(d for n, d in events if n == "content_block_start")
    assert start["content_block"] == {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}}
    deltas = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert "".join(deltas) == arguments and len(deltas) == len(arguments)
    message = anthropic_final_message(events)
    assert message.stop_reason == "tool_use"
    assert message.content[0].input == {"city": "Paris", "unit": "C"}


def test_sequential_tool_calls_stream_live() -> None:
    translator = ChatStreamToMessages()
    out = translator.feed(orjson.dumps(chunk({"content": "Checking both."})))
    out += translator.feed(orjson.dumps(tool(0, id="call_A", name="get_weather", args='{"city":')))
    out += translator.feed(orjson.dumps(tool(0, args=' "Paris"}')))
    second = translator.feed(orjson.dumps(tool(1, id="call_B", name="get_weather", args='{"city": "Rome"}')))
    # The first call's JSON was complete, so the second opens at once instead of being held.
    assert b'"name":"get_weather"' in second and b"content_block_stop" in second
    out += second + translator.feed(orjson.dumps(chunk({}, "tool_calls"))) + translator.finish()
    message = anthropic_final_message(anthropic_events(out))
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert [b.input for b in message.content[1:]] == [{"city": "Paris"}, {"city": "Rome"}]
    assert [b.id for b in message.content[1:]] == ["call_A", "call_B"]


def test_interleaved_tool_calls_do_not_interleave_blocks() -> None:
    _, events = run(
        tool(0, id="call_A", name="read", args='{"pa'),
        tool(1, id="call_B", name="write", args='{"pa'),
        tool(0, args='th": "a.txt"'),
        tool(1, args='th": "b.txt", '),
        tool(1, args='"text": "hi"}'),
        tool(0, args="}"),
        chunk({}, "tool_calls"),
    )
    open_block = None
    for name, data in events:  # blocks strictly sequential, indices dense from 0
        if name == "content_block_start":
            assert open_block is None
            open_block = data["index"]
        elif name == "content_block_delta":
            assert data["index"] == open_block
        elif name == "content_block_stop":
            assert data["index"] == open_block
            open_block = None
    message = anthropic_final_message(events)
    assert [(b.id, b.name, b.input) for b in message.content] == [
        ("call_A", "read", {"path": "a.txt"}),
        ("call_B", "write", {"path": "b.txt", "text": "hi"}),
    ]


def test_several_calls_in_one_chunk_and_a_new_id_at_a_reused_index() -> None:
    both = chunk({"tool_calls": [
        {"index": 0, "id": "c1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
        {"index": 1, "id": "c2", "type": "function", "function": {"name": "b", "arguments": '{"x": 1}'}},
    ]})
    reused = tool(0, id="c3", name="c", args='{"y": 2}')  # some servers restart at index 0
    _, events = run(both, reused, chunk({}, "tool_calls"))
    message = anthropic_final_message(events)
    assert [(b.id, b.input) for b in message.content] == [("c1", {}), ("c2", {"x": 1}), ("c3", {"y": 2})]


def test_text_arriving_inside_an_incomplete_tool_call_is_held() -> None:
    _, events = run(
        tool(0, id="c1", name="f", args='{"a": '),
        chunk({"content": "(aside)"}),
        tool(0, args="1}"),
        chunk({}, "tool_calls"),
    )
    message = anthropic_final_message(events)
    assert [b.type for b in message.content] == ["tool_use", "text"]
    assert message.content[0].input == {"a": 1} and message.content[1].text == "(aside)"


def test_buffered_call_with_invalid_arguments_is_wrapped() -> None:
    _, events = run(
        tool(0, id="c1", name="f", args='{"a": '),
        tool(1, id="c2", name="g", args="not json"),
        chunk({}, "length"),
    )
    message = anthropic_final_message(events)
    assert message.stop_reason == "max_tokens"
    assert message.content[1].input == {"_raw_arguments": "not json"}


def test_tool_calls_finished_with_stop_still_mean_tool_use() -> None:
    _, events = run(tool(0, id="c1", name="f", args="{}"), chunk({}, "stop"))
    assert anthropic_final_message(events).stop_reason == "tool_use"


def test_call_without_id_gets_one_and_nameless_call_is_dropped() -> None:
    _, events = run(tool(0, name="f", args="{}"), tool(1, args="{}"), chunk({}, "tool_calls"))
    message = anthropic_final_message(events)
    assert len(message.content) == 1 and message.content[0].id.startswith("toolu_")


@pytest.mark.parametrize(
    ("finish", "expected"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal"),
     ("function_call", "tool_use"), (None, "end_turn"), ("insufficient_system_resource", "end_turn")],
)
def test_finish_reasons(finish: str | None, expected: str) -> None:
    _, events = run(chunk({"content": "x"}), chunk({}, finish))
    assert anthropic_final_message(events).stop_reason == expected


def test_vllm_stop_reason_gives_stop_sequence() -> None:
    _, events = run(chunk({"content": "1 2 3"}), {**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "END"}]})
    message = anthropic_final_message(events)
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "END"


def test_usage_chunk_with_null_choices_and_overrides() -> None:
    translator, events = run(
        chunk({"content": "hi"}),
        chunk({}, "stop"),
        {**BASE, "choices": None, "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}},
        message_id="msg_fixed",
        model="public-name",
    )
    start = events[0][1]["message"]
    assert start["id"] == "msg_fixed" and start["model"] == "public-name"
    assert translator.usage.input_tokens == 7 and translator.usage.output_tokens == 2


def test_in_band_error_mid_stream_ends_the_stream() -> None:
    translator = ChatStreamToMessages()
    out = translator.feed(orjson.dumps(chunk({"content": "partial"})))
    error = translator.feed(orjson.dumps({"error": {"message": "Rate limit reached", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}))
    [(name, data)] = anthropic_events(error)
    assert name == "error"
    assert data == {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached"}}
    assert translator.finished
    assert translator.feed(orjson.dumps(chunk({"content": "more"}))) == b"" and translator.finish() == b""
    assert anthropic_events(out)[0][0] == "message_start"


def test_vllm_style_error_with_numeric_code() -> None:
    translator = ChatStreamToMessages()
    [(_, data)] = anthropic_events(translator.feed(b'{"object":"error","error":{"message":"boom","type":"InternalServerError","code":500}}'))
    assert data["error"] == {"type": "api_error", "message": "boom"}


def test_stream_ending_without_done() -> None:
    translator, events = run(chunk({"content": "cut o"}), tool(0, id="c1", name="f", args='{"a": 1'))
    assert names(events)[-2:] == ["message_delta", "message_stop"]
    assert translator.finished and translator.finish() == b""
    assert names(events).count("content_block_start") == names(events).count("content_block_stop") == 2


def test_empty_stream_still_yields_a_valid_message() -> None:
    translator = ChatStreamToMessages(model="m")
    events = anthropic_events(translator.finish())
    assert names(events) == ["message_start", "message_delta", "message_stop"]
    assert anthropic_final_message(events).content == []


@pytest.mark.parametrize(("status", "kind"), [(502, "api_error"), (429, "rate_limit_error"), (504, "timeout_error"), (529, "overloaded_error")])
def test_fail_emits_an_anthropic_error_event(status: int, kind: str) -> None:
    translator = ChatStreamToMessages()
    translator.feed(orjson.dumps(chunk({"content": "x"})))
    [(name, data)] = anthropic_events(translator.fail(status, "upstream went away"))
    assert name == "error" and data == {"type": "error", "error": {"type": kind, "message": "upstream went away"}}
    assert translator.finished and translator.fail(status, "again") == b"" and translator.finish() == b""


def test_non_json_and_unexpected_chunks_are_skipped() -> None:
    translator = ChatStreamToMessages()
    assert translator.feed(b": keep-alive") == b""
    assert translator.feed(b"[1, 2]") == b""
    out = translator.feed(orjson.dumps(chunk({"content": "ok"}))) + translator.finish()
    assert anthropic_final_message(anthropic_events(out)).content[0].text == "ok"


def test_raw_upstream_bytes_split_at_every_position() -> None:
    """The hot path: SSEParser on arbitrarily split bytes, then feed each event's data."""
    stream = b"".join(
        b"data: " + orjson.dumps(c) + b"\n\n"
        for c in (chunk({"role": "assistant"}), chunk({"content": "Hé"}), tool(0, id="c", name="f", args='{"k":'), tool(0, args='"v"}'), chunk({}, "tool_calls"), usage_chunk(3, 4))
    ) + b"data: [DONE]\n\n"
    expected = None
    for size in (1, 2, 3, 7, 64, len(stream)):
        parser, translator, out = SSEParser(), ChatStreamToMessages(message_id="msg_x"), b""
        for i in range(0, len(stream), size):
            for event in parser.feed(stream[i : i + size]):
                out += translator.feed(event.data)
        assert translator.finished
        message = anthropic_final_message(anthropic_events(out))
        assert message.content[0].text == "Hé" and message.content[1].input == {"k": "v"}
        expected = expected or out
        assert out == expected
