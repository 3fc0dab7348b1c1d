"""The deterministic mock replies, checked against the official SDKs' response types."""

from __future__ import annotations

import base64
import math
import struct

import orjson
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

from keystile.providers import mock_replies
from keystile.sse import SSEParser

STREAM_EVENT = TypeAdapter(RawMessageStreamEvent)

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "detailed": {"type": "boolean"},
        "optional": {"type": "string"},
    },
    "required": ["city", "days", "unit", "detailed"],
}
WEATHER_INPUT = {"city": "mock", "days": 1, "unit": "celsius", "detailed": True}


def anthropic_body(text: str = "What is the capital of France?", **extra: object) -> dict:
    return {"model": "claude-test", "max_tokens": 256, "messages": [{"role": "user", "content": text}], **extra}


def openai_body(text: str = "What is the capital of France?", **extra: object) -> dict:
    return {"model": "gpt-test", "messages": [{"role": "user", "content": text}], **extra}


ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": "Weather", "input_schema": WEATHER_SCHEMA},
    {"name": "get_time", "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}},
]
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}} for t in ANTHROPIC_TOOLS
]


def sse_events(raw_events: list[bytes]) -> list[tuple[str | None, bytes]]:
    """Every element must be exactly one complete SSE event."""
    out = []
    for raw in raw_events:
        parser = SSEParser()
        events = parser.feed(raw)
        assert len(events) == 1 and parser.pending == b"", raw
        out.append((events[0].event, events[0].data))
    return out


def anthropic_stream_events(body: dict) -> list:
    events = []
    for name, data in sse_events(mock_replies.anthropic_stream(body)):
        payload = orjson.loads(data)
        assert payload["type"] == name
        if name != "ping":
            events.append(STREAM_EVENT.validate_python(payload))
    return events


def accumulate_anthropic(events: list) -> dict:
    """Rebuild the message from its stream events, the way SDKs do."""
    message = events[0].message.model_dump()
    partial: dict[int, str] = {}
    for event in events[1:]:
        if event.type == "content_block_start":
            assert event.index == len(message["content"])
            message["content"].append(event.content_block.model_dump(exclude_none=True))
        elif event.type == "content_block_delta":
            block = message["content"][event.index]
            if event.delta.type == "text_delta":
                block["text"] += event.delta.text
            else:
                partial[event.index] = partial.get(event.index, "") + event.delta.partial_json
        elif event.type == "content_block_stop":
            if event.index in partial:
                message["content"][event.index]["input"] = orjson.loads(partial[event.index])
        elif event.type == "message_delta":
            message["stop_reason"] = event.delta.stop_reason
            message["stop_sequence"] = event.delta.stop_sequence
            message["usage"]["output_tokens"] = event.usage.output_tokens
    return message


# ---------------------------------------------------------------------------------------
# Anthropic


def test_anthropic_message_is_a_valid_message_echoing_the_request() -> None:
    body = anthropic_body()
    message = Message.model_validate(mock_replies.anthropic_message(body))
    assert message.model == "claude-test"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hello from keystile mock. You said: What is the capital of France?"
    assert message.id.startswith("msg_")
    # "What is the capital of France?" is 30 characters -> ceil(30 / 4) tokens.
    assert message.usage.input_tokens == 8
    assert message.usage.output_tokens == len(message.content[0].text.split())
    assert message.usage.cache_read_input_tokens == 0 and message.usage.cache_creation_input_tokens == 0


def test_anthropic_long_user_text_is_truncated_in_the_echo() -> None:
    text = " ".join(f"word{i}" for i in range(100))
    reply = mock_replies.anthropic_message(anthropic_body(text))["content"][0]["text"]
    echoed = reply.removeprefix("Hello from keystile mock. You said: ")
    assert len(echoed) <= mock_replies.ECHO_CHARS + 1 and text.startswith(echoed.rstrip("…"))


def test_anthropic_stream_has_the_standard_event_sequence_and_rebuilds_the_message() -> None:
    body = anthropic_body(stream=True)
    names = [name for name, _ in sse_events(mock_replies.anthropic_stream(body))]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert names.count("content_block_delta") >= 3

    events = anthropic_stream_events(body)
    start = events[0]
    assert start.message.stop_reason is None and start.message.content == []
    assert start.message.usage.input_tokens == 8
    delta = [e for e in events if e.type == "message_delta"][0]
    assert delta.usage.input_tokens == 8  # cumulative usage on message_delta

    rebuilt = accumulate_anthropic(events)
    whole = mock_replies.anthropic_message(body)
    assert rebuilt["content"] == whole["content"]
    assert rebuilt["stop_reason"] == whole["stop_reason"]
    assert rebuilt["usage"]["output_tokens"] == whole["usage"]["output_tokens"]


def test_anthropic_tool_call_is_built_from_the_schema() -> None:
    body = anthropic_body("weather in Paris?", tools=ANTHROPIC_TOOLS)
    message = Message.model_validate(mock_replies.anthropic_message(body))
    assert message.stop_reason == "tool_use"
    tool_use = message.content[-1]
    assert tool_use.type == "tool_use" and tool_use.name == "get_weather"
    assert tool_use.id.startswith("toolu_")
    assert tool_use.input == WEATHER_INPUT
    assert message.usage.output_tokens > 2


def test_anthropic_tool_call_streams_input_json_in_fragments() -> None:
    body = anthropic_body("weather in Paris?", tools=ANTHROPIC_TOOLS, stream=True)
    events = anthropic_stream_events(body)
    fragments = [
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert len(fragments) >= 2
    assert orjson.loads("".join(fragments)) == WEATHER_INPUT
    start = [e for e in events if e.type == "content_block_start" and e.content_block.type == "tool_use"][0]
    assert start.content_block.input == {}
    rebuilt = accumulate_anthropic(events)
    assert rebuilt["content"] == mock_replies.anthropic_message(body)["content"]
    assert rebuilt["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ({"type": "auto"}, "get_weather"),
        ({"type": "any"}, "get_weather"),
        ({"type": "tool", "name": "get_time"}, "get_time"),
        ({"type": "none"}, None),
    ],
)
def test_anthropic_tool_choice(tool_choice: dict, expected: str | None) -> None:
    body = anthropic_body("hi", tools=ANTHROPIC_TOOLS, tool_choice=tool_choice)
    message = mock_replies.anthropic_message(body)
    tool_uses = [b for b in message["content"] if b["type"] == "tool_use"]
    if expected is None:
        assert tool_uses == [] and message["stop_reason"] == "end_turn"
    else:
        assert [t["name"] for t in tool_uses] == [expected]


def test_anthropic_tool_result_turn_is_answered_with_text() -> None:
    first = anthropic_body("weather in Paris?", tools=ANTHROPIC_TOOLS)
    reply = mock_replies.anthropic_message(first)
    tool_use = reply["content"][-1]
    follow_up = {
        **first,
        "messages": first["messages"]
        + [
            {"role": "assistant", "content": reply["content"]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_use["id"],
                        "content": [{"type": "text", "text": "18 degrees and sunny"}],
                    }
                ],
            },
        ],
    }
    message = Message.model_validate(mock_replies.anthropic_message(follow_up))
    assert message.stop_reason == "end_turn"
    assert message.content[0].text == "Tool result received: 18 degrees and sunny"


def test_anthropic_max_tokens_truncates_and_reports_max_tokens() -> None:
    message = mock_replies.anthropic_message(anthropic_body(max_tokens=3))
    assert message["content"][0]["text"] == "Hello from keystile"
    assert message["stop_reason"] == "max_tokens" and message["usage"]["output_tokens"] == 3
    events = anthropic_stream_events(anthropic_body(max_tokens=3))
    assert accumulate_anthropic(events)["stop_reason"] == "max_tokens"


def test_anthropic_stop_sequence_truncates_and_is_reported() -> None:
    message = mock_replies.anthropic_message(anthropic_body("alpha STOP beta", stop_sequences=["zzz", "STOP"]))
    assert message["content"][0]["text"] == "Hello from keystile mock. You said: alpha "
    assert message["stop_reason"] == "stop_sequence" and message["stop_sequence"] == "STOP"
    rebuilt = accumulate_anthropic(anthropic_stream_events(anthropic_body("alpha STOP beta", stop_sequences=["STOP"])))
    assert rebuilt["stop_sequence"] == "STOP"
    assert rebuilt["content"][0]["text"] == message["content"][0]["text"]


def test_anthropic_cache_control_prefix_is_reported_as_cached() -> None:
    system = [{"type": "text", "text": "x" * 400, "cache_control": {"type": "ephemeral"}}]
    body = anthropic_body(system=system)
    usage = mock_replies.anthropic_message(body)["usage"]
    assert usage["cache_read_input_tokens"] == 100
    assert usage["input_tokens"] == 8
    written = mock_replies.anthropic_message(body, cache_mode="write")["usage"]
    assert written["cache_creation_input_tokens"] == 100 and written["cache_read_input_tokens"] == 0
    assert mock_replies.anthropic_count_tokens(body) == {"input_tokens": 108}


def test_count_tokens_counts_system_messages_and_tools() -> None:
    assert mock_replies.anthropic_count_tokens(anthropic_body("abcd" * 10)) == {"input_tokens": 10}
    with_tools = mock_replies.anthropic_count_tokens(anthropic_body("abcd" * 10, tools=ANTHROPIC_TOOLS))
    assert with_tools["input_tokens"] > 10
    assert mock_replies.anthropic_count_tokens({"messages": []}) == {"input_tokens": 1}


# ---------------------------------------------------------------------------------------
# OpenAI


def test_openai_completion_is_a_valid_chat_completion() -> None:
    completion = ChatCompletion.model_validate(mock_replies.openai_completion(openai_body()))
    assert completion.model == "gpt-test"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.content == "Hello from keystile mock. You said: What is the capital of France?"
    assert completion.usage.prompt_tokens == 8
    assert completion.usage.completion_tokens == len(choice.message.content.split())
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def openai_chunks(body: dict) -> tuple[list[ChatCompletionChunk], bytes]:
    events = sse_events(mock_replies.openai_stream(body))
    assert all(name is None for name, _ in events)
    *chunks, done = events
    return [ChatCompletionChunk.model_validate(orjson.loads(data)) for _, data in chunks], done[1]


def test_openai_stream_chunks_rebuild_the_completion() -> None:
    body = openai_body(stream=True)
    chunks, done = openai_chunks(body)
    assert done == b"[DONE]"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == mock_replies.openai_completion(body)["choices"][0]["message"]["content"]
    finishes = [c.choices[0].finish_reason for c in chunks]
    assert finishes[-1] == "stop" and finishes[:-1] == [None] * (len(chunks) - 1)
    assert chunks[-1].choices[0].delta.content  # finish_reason rides on the last content chunk
    assert len({c.id for c in chunks}) == 1


def test_openai_stream_usage_chunk_only_when_asked() -> None:
    body = openai_body(stream=True, stream_options={"include_usage": True})
    chunks, done = openai_chunks(body)
    assert done == b"[DONE]"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.model_dump() == ChatCompletion.model_validate(mock_replies.openai_completion(body)).usage.model_dump()
    raw = [orjson.loads(d) for _, d in sse_events(mock_replies.openai_stream(body))[:-2]]
    assert all("usage" in c and c["usage"] is None for c in raw)
    plain, _ = openai_chunks(openai_body(stream=True, stream_options={"include_usage": False}))
    assert all(c.choices for c in plain)


def test_openai_tool_call_and_its_streamed_fragments() -> None:
    body = openai_body("weather?", tools=OPENAI_TOOLS)
    completion = ChatCompletion.model_validate(mock_replies.openai_completion(body))
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments) == WEATHER_INPUT

    chunks, _ = openai_chunks({**body, "stream": True})
    fragments = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices[0].delta.tool_calls]
    assert fragments[0].id == call.id and fragments[0].function.name == "get_weather"
    assert fragments[0].type == "function" and fragments[0].index == 0
    assert all(f.id is None and f.function.name is None and f.index == 0 for f in fragments[1:])
    assert len(fragments) >= 3
    assert "".join(f.function.arguments or "" for f in fragments) == call.function.arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ("auto", "get_weather"),
        ("required", "get_weather"),
        ({"type": "function", "function": {"name": "get_time"}}, "get_time"),
        ("none", None),
    ],
)
def test_openai_tool_choice(tool_choice: object, expected: str | None) -> None:
    message = mock_replies.openai_completion(openai_body("hi", tools=OPENAI_TOOLS, tool_choice=tool_choice))
    calls = message["choices"][0]["message"].get("tool_calls") or []
    assert [c["function"]["name"] for c in calls] == ([expected] if expected else [])


def test_openai_tool_result_turn_is_answered_with_text() -> None:
    first = openai_body("weather?", tools=OPENAI_TOOLS)
    assistant = mock_replies.openai_completion(first)["choices"][0]["message"]
    follow_up = {
        **first,
        "messages": first["messages"]
        + [assistant, {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"], "content": "18C"}],
    }
    completion = ChatCompletion.model_validate(mock_replies.openai_completion(follow_up))
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content == "Tool result received: 18C"


def test_openai_length_and_stop() -> None:
    short = mock_replies.openai_completion(openai_body(max_completion_tokens=2))
    assert short["choices"][0]["message"]["content"] == "Hello from"
    assert short["choices"][0]["finish_reason"] == "length"
    legacy = mock_replies.openai_completion(openai_body(max_tokens=2))
    assert legacy["choices"][0]["finish_reason"] == "length"
    chunks, _ = openai_chunks(openai_body(max_tokens=2, stream=True))
    assert chunks[-1].choices[0].finish_reason == "length"
    stopped = mock_replies.openai_completion(openai_body("one two three", stop="two"))
    assert stopped["choices"][0]["message"]["content"] == "Hello from keystile mock. You said: one "
    assert stopped["choices"][0]["finish_reason"] == "stop"


def test_openai_embeddings_are_deterministic_unit_vectors() -> None:
    body = {"model": "text-embedding-test", "input": ["hello", "world", "hello"]}
    response = CreateEmbeddingResponse.model_validate(mock_replies.openai_embeddings(body))
    vectors = [d.embedding for d in response.data]
    assert [d.index for d in response.data] == [0, 1, 2]
    assert len(vectors[0]) == mock_replies.EMBEDDING_DIMENSIONS
    assert vectors[0] == vectors[2] != vectors[1]
    assert math.isclose(sum(v * v for v in vectors[0]), 1.0, rel_tol=1e-4)
    assert response.usage.prompt_tokens == 6 and response.model == "text-embedding-test"

    single = mock_replies.openai_embeddings({"model": "e", "input": "hello", "dimensions": 16})
    assert len(single["data"]) == 1 and len(single["data"][0]["embedding"]) == 16
    tokens = mock_replies.openai_embeddings({"model": "e", "input": [[1, 2, 3], [4]]})
    assert len(tokens["data"]) == 2 and tokens["usage"]["prompt_tokens"] == 4

    encoded = mock_replies.openai_embeddings({**body, "encoding_format": "base64"})["data"][0]["embedding"]
    decoded = struct.unpack("<8f", base64.b64decode(encoded))
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(decoded, vectors[0]))


# ---------------------------------------------------------------------------------------
# Properties shared by every generator


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (None, {}),
        ({"type": "object"}, {}),
        ({"type": "object", "properties": {"a": {"type": "string"}}}, {}),
        (
            {
                "type": "object",
                "properties": {
                    "s": {"type": "string"},
                    "i": {"type": "integer"},
                    "n": {"type": "number"},
                    "b": {"type": "boolean"},
                    "a": {"type": "array", "items": {"type": "string"}},
                    "o": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
                    "nullable": {"type": ["null", "integer"]},
                    "untyped": {},
                },
                "required": ["s", "i", "n", "b", "a", "o", "nullable", "untyped"],
            },
            {"s": "mock", "i": 1, "n": 1, "b": True, "a": [], "o": {"x": 1}, "nullable": 1, "untyped": "mock"},
        ),
    ],
)
def test_input_from_schema(schema: object, expected: dict) -> None:
    assert mock_replies.input_from_schema(schema) == expected


GENERATORS = [
    (mock_replies.anthropic_message, anthropic_body),
    (mock_replies.anthropic_stream, anthropic_body),
    (mock_replies.openai_completion, openai_body),
    (mock_replies.openai_stream, openai_body),
]


@pytest.mark.parametrize(("generate", "make_body"), GENERATORS)
def test_replies_are_deterministic(generate, make_body) -> None:
    assert generate(make_body("same question")) == generate(make_body("same question"))
    assert generate(make_body("same question")) != generate(make_body("another question"))


@pytest.mark.parametrize(("generate", "make_body"), GENERATORS)
@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: {**b, "messages": "not a list"},
        lambda b: {**b, "messages": [None, 3, {"role": "user", "content": [None, {"type": "text"}]}]},
        lambda b: {**b, "tools": [{"name": 1}, "x", {"type": "function", "function": {"parameters": 3}}]},
        lambda b: {**b, "max_tokens": "lots", "stop": 5, "stop_sequences": [None, ""]},
        lambda b: {k: v for k, v in b.items() if k != "model"},
    ],
)
def test_odd_bodies_do_not_crash(generate, make_body, mangle) -> None:
    assert generate(mangle(make_body()))


def test_plain_conversation_without_user_text_still_answers() -> None:
    message = mock_replies.anthropic_message({"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": "x"}]})
    assert message["content"][0]["text"] == mock_replies.GREETING


def test_without_auto_tools_only_a_forced_tool_choice_calls_a_tool():
    tool = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    body = {"model": "m", "max_tokens": 50, "tools": [tool], "messages": [{"role": "user", "content": "hi"}]}
    assert mock_replies.anthropic_message(body, auto_tools=False)["stop_reason"] == "end_turn"
    forced = mock_replies.anthropic_message({**body, "tool_choice": {"type": "any"}}, auto_tools=False)
    assert forced["stop_reason"] == "tool_use"
    chat = {"model": "m", "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}], "messages": [{"role": "user", "content": "hi"}]}
    assert mock_replies.openai_completion(chat, auto_tools=False)["choices"][0]["finish_reason"] == "stop"
    assert mock_replies.openai_completion({**chat, "tool_choice": "required"}, auto_tools=False)["choices"][0]["finish_reason"] == "tool_calls"


ROUTING_SCHEMA = {  # Gemini CLI's routing call asks for this, with Google's upper-case types
    "type": "OBJECT",
    "properties": {"complexity_reasoning": {"type": "STRING"}, "complexity_score": {"type": "INTEGER"}},
    "required": ["complexity_reasoning", "complexity_score"],
}
ROUTING_ANSWER = {"complexity_reasoning": "mock", "complexity_score": 1}


@pytest.mark.parametrize(
    "reply_text",
    [
        lambda: mock_replies.anthropic_message(
            anthropic_body(output_config={"format": {"type": "json_schema", "schema": WEATHER_SCHEMA}})
        )["content"][0]["text"],
        lambda: mock_replies.anthropic_message(anthropic_body(output_format={"type": "json_schema", "schema": WEATHER_SCHEMA}))[
            "content"
        ][0]["text"],
        lambda: mock_replies.openai_completion(
            openai_body(response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER_SCHEMA}})
        )["choices"][0]["message"]["content"],
    ],
    ids=["anthropic-output_config", "anthropic-output_format", "chat-response_format"],
)
def test_structured_output_is_json_in_the_schema(reply_text) -> None:
    assert orjson.loads(reply_text()) == WEATHER_INPUT


def test_structured_output_in_responses_and_gemini() -> None:
    from keystile.providers import mock_replies_gemini, mock_replies_responses

    body = {"model": "gpt-5", "input": "route me", "text": {"format": {"type": "json_schema", "name": "w", "schema": WEATHER_SCHEMA}}}
    response = mock_replies_responses.responses_response(body)
    assert orjson.loads(response["output"][0]["content"][0]["text"]) == WEATHER_INPUT
    gemini = {
        "contents": [{"role": "user", "parts": [{"text": "route me"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": ROUTING_SCHEMA},
    }
    answer = mock_replies_gemini.gemini_response(gemini, "gemini-3.5-flash-lite")
    assert orjson.loads(answer["candidates"][0]["content"]["parts"][0]["text"]) == ROUTING_ANSWER


def test_json_mode_without_a_schema_is_a_json_object_with_the_reply() -> None:
    completion = mock_replies.openai_completion(openai_body("Hi", response_format={"type": "json_object"}))
    assert orjson.loads(completion["choices"][0]["message"]["content"]) == {"reply": "Hello from keystile mock. You said: Hi"}
    # Stream and whole answer agree.
    chunks = [c for c in mock_replies.openai_stream(openai_body("Hi", response_format={"type": "json_object"}, stream=True))]
    text = "".join(
        (orjson.loads(e.data).get("choices") or [{}])[0].get("delta", {}).get("content") or ""
        for chunk in chunks
        for e in SSEParser().feed(chunk)
        if e.data != b"[DONE]"
    )
    assert orjson.loads(text) == {"reply": "Hello from keystile mock. You said: Hi"}
