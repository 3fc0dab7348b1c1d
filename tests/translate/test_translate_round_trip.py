"""Round trips keep the meaning: A → O → A and O → A → O, for requests, responses and streams."""

from __future__ import annotations

import orjson

from keystile.sse import SSEParser
from keystile.translate.request_to_anthropic import chat_request_to_messages
from keystile.translate.request_to_openai import messages_request_to_chat
from keystile.translate.response_to_anthropic import chat_response_to_messages
from keystile.translate.response_to_openai import messages_response_to_chat
from keystile.translate.stream_to_anthropic import ChatStreamToMessages
from keystile.translate.stream_to_openai import MessagesStreamToChat

from .translation_harness import anthropic_events, anthropic_final_message

# What Claude Code sends mid-task: system blocks, a tool loop, an image, an error result.
CLAUDE_CODE_REQUEST = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 32000,
    "stream": True,
    "temperature": 1,
    "system": [{"type": "text", "text": "You are Claude Code."}, {"type": "text", "text": "Be concise.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Fix the failing test."}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "pytest -x", "timeout": 60000}},
            {"type": "tool_use", "id": "toolu_02", "name": "Read", "input": {"file_path": "/repo/app.py"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "1 failed", "is_error": True},
            {"type": "tool_result", "tool_use_id": "toolu_02", "content": [{"type": "text", "text": "def add(a, b):\n    return a - b"}]},
        ]},
        {"role": "assistant", "content": [{"type": "text", "text": "Found it."}]},
        {"role": "user", "content": "Go ahead."},
    ],
    "tools": [
        {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}}, "required": ["command"]}},
        {"name": "Read", "description": "Read a file", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}},
    ],
    "tool_choice": {"type": "auto"},
    "stop_sequences": ["<END>"],
    "metadata": {"user_id": "session-1"},
    "thinking": {"type": "enabled", "budget_tokens": 8192},
}


def test_anthropic_request_survives_a_trip_through_openai() -> None:
    openai_body = messages_request_to_chat(CLAUDE_CODE_REQUEST, upstream_model="o3")  # a model that takes an effort
    back = chat_request_to_messages(openai_body, upstream_model="claude-sonnet-4-5", default_max_tokens=1024)

    assert back["system"] == "You are Claude Code.\n\nBe concise."
    assert back["max_tokens"] == 32000 and back["stream"] is True and back["temperature"] == 1
    assert back["stop_sequences"] == ["<END>"] and back["metadata"] == {"user_id": "session-1"}
    assert back["tools"] == [{k: v for k, v in t.items()} for t in CLAUDE_CODE_REQUEST["tools"]]
    assert back["tool_choice"] == {"type": "auto"}
    # The budget survives as its effort band: 8192 → medium → 8192.
    assert openai_body["reasoning_effort"] == "medium"
    assert back["thinking"] == {"type": "enabled", "budget_tokens": 8192}

    roles = [m["role"] for m in back["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    first, tool_turn, results, _, last = back["messages"]
    assert first["content"] == CLAUDE_CODE_REQUEST["messages"][0]["content"]
    assert tool_turn["content"] == CLAUDE_CODE_REQUEST["messages"][1]["content"]
    assert results["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": "Error: 1 failed"},
        {"type": "tool_result", "tool_use_id": "toolu_02", "content": "def add(a, b):\n    return a - b"},
    ]
    assert last["content"] == [{"type": "text", "text": "Go ahead."}]


def test_openai_request_survives_a_trip_through_anthropic() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be helpful."},
            {"role": "user", "content": [{"type": "text", "text": "What's this?"}, {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"a.png"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "description": "Look up", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "max_completion_tokens": 700,
        "temperature": 0.5,
        "stop": ["###"],
        "user": "u1",
        "stream": True,
    }
    anthropic_body = chat_request_to_messages(body, upstream_model="claude-haiku-4-5", default_max_tokens=1024)
    back = messages_request_to_chat(anthropic_body, upstream_model="gpt-4o")
    assert back["messages"] == [
        {"role": "system", "content": "Be helpful."},
        body["messages"][1],
        body["messages"][2],
        body["messages"][3],
    ]
    assert back["tools"] == body["tools"]
    assert (back["tool_choice"], back["parallel_tool_calls"]) == ("required", False)
    assert (back["max_tokens"], back["temperature"], back["stop"], back["user"]) == (700, 0.5, ["###"], "u1")
    assert back["stream_options"] == {"include_usage": True}


def test_responses_survive_both_trips() -> None:
    anthropic = {
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Running tests."}, {"type": "tool_use", "id": "toolu_9", "name": "Bash", "input": {"command": "pytest"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 3000},
    }
    assert chat_response_to_messages(messages_response_to_chat(anthropic)) == anthropic

    openai = {
        "id": "chatcmpl-7", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there"}, "finish_reason": "length", "logprobs": None}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60, "prompt_tokens_details": {"cached_tokens": 20}},
    }
    back = messages_response_to_chat(chat_response_to_messages(openai))
    back["created"] = 1
    assert back == openai


def test_stream_survives_anthropic_to_openai_to_anthropic() -> None:
    events = [
        ("message_start", {"type": "message_start", "message": {"id": "msg_S", "type": "message", "role": "assistant", "model": "claude", "content": [], "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 40, "output_tokens": 1, "cache_read_input_tokens": 60}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Reading "}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "both."}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("ping", {"type": "ping"}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_a", "name": "Read", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"file_path"'}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ': "a.py"}'}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_b", "name": "Read", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"file_path": "b.py"}'}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 2}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 33}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    to_openai = MessagesStreamToChat(include_usage=True)
    openai_bytes = b"".join(to_openai.feed(name, orjson.dumps(data)) for name, data in events)

    to_anthropic = ChatStreamToMessages(message_id="msg_S")
    parser = SSEParser()
    out = b""
    for event in parser.feed(openai_bytes):
        out += to_anthropic.feed(event.data)
    assert to_anthropic.finished  # [DONE] arrived

    original = anthropic_final_message(events)
    rebuilt = anthropic_final_message(anthropic_events(out))
    assert rebuilt.content == original.content
    assert rebuilt.stop_reason == original.stop_reason == "tool_use"
    assert (rebuilt.usage.input_tokens, rebuilt.usage.output_tokens, rebuilt.usage.cache_read_input_tokens) == (40, 33, 60)
    assert to_openai.usage == to_anthropic.usage
