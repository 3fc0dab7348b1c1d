"""Any client on any model: the official SDKs across formats, with tool round-trips, through the real server."""

from __future__ import annotations

import json

import httpx
import openai
import orjson
import pytest

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}
NO_RETRY = {"x-keystile-max-retries": "0"}


def last_body(upstream) -> dict:
    return orjson.loads(upstream.requests()[-1]["body"])


def test_anthropic_sdk_on_an_openai_model_with_a_tool_round_trip(claude, upstream):
    first = claude.messages.create(
        model="gpt-test",
        max_tokens=300,
        system="You are terse.",
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    sent = last_body(upstream)
    assert upstream.requests()[-1]["path"] == "/v1/chat/completions"
    assert sent["model"] == "gpt-4o-2024-08-06"
    assert sent["messages"][0] == {"role": "system", "content": "You are terse."}
    assert sent["max_tokens"] == 300
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tools"][0]["function"]["parameters"] == WEATHER_TOOL["input_schema"]

    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "get_weather" and call.input == {"location": "mock"}
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0

    final = claude.messages.create(
        model="gpt-test",
        max_tokens=300,
        system="You are terse.",
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]},
        ],
    )
    sent = last_body(upstream)
    tool_message = next(m for m in sent["messages"] if m["role"] == "tool")
    assert tool_message["tool_call_id"] == call.id and "18C and sunny" in json.dumps(tool_message["content"])
    assistant = next(m for m in sent["messages"] if m["role"] == "assistant")
    assert assistant["tool_calls"][0]["id"] == call.id
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"location": "mock"}
    assert final.stop_reason == "end_turn"
    assert "18C and sunny" in final.content[0].text


def test_anthropic_sdk_streams_from_an_openai_model_with_tools(claude, upstream):
    with claude.messages.stream(
        model="gpt-test", max_tokens=300, tools=[WEATHER_TOOL], messages=[{"role": "user", "content": "Weather?"}]
    ) as stream:
        message = stream.get_final_message()
    assert last_body(upstream)["stream_options"] == {"include_usage": True}
    assert message.stop_reason == "tool_use"
    call = next(block for block in message.content if block.type == "tool_use")
    assert call.input == {"location": "mock"} and call.id
    assert message.usage.output_tokens > 0

    with claude.messages.stream(model="gpt-test", max_tokens=300, messages=[{"role": "user", "content": "plain"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from keystile mock. You said: plain"
    assert final.stop_reason == "end_turn" and final.usage.input_tokens > 0


def test_openai_sdk_on_a_claude_model_with_a_tool_round_trip(gpt, upstream):
    tools = [{"type": "function", "function": {"name": WEATHER_TOOL["name"], "parameters": WEATHER_TOOL["input_schema"]}}]
    first = gpt.chat.completions.create(
        model="claude-test",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Oslo?"}],
        tools=tools,
    )
    sent = last_body(upstream)
    assert upstream.requests()[-1]["path"] == "/v1/messages"
    assert sent["system"] in ("Be brief.", [{"type": "text", "text": "Be brief."}])
    assert all(m["role"] != "system" for m in sent["messages"])
    assert sent["max_tokens"] == 4096  # the OpenAI client omitted it; Anthropic requires it
    assert sent["tools"][0] == {"name": "get_weather", "input_schema": WEATHER_TOOL["input_schema"]}

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"location": "mock"}
    assert first.usage.prompt_tokens > 0 and first.usage.completion_tokens > 0

    final = gpt.chat.completions.create(
        model="claude-test",
        max_completion_tokens=200,
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "-3C and snowing"},
        ],
        tools=tools,
    )
    sent = last_body(upstream)
    assert sent["max_tokens"] == 200
    result = sent["messages"][-1]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == call.id
    assert final.choices[0].finish_reason == "stop"
    assert "-3C and snowing" in final.choices[0].message.content


def test_openai_sdk_streams_from_a_claude_model_with_usage_and_tools(gpt, upstream):
    chunks = list(
        gpt.chat.completions.create(
            model="claude-test",
            messages=[{"role": "user", "content": "stream"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from keystile mock. You said: stream"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]

    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_TOOL["input_schema"]}}]
    chunks = list(gpt.chat.completions.create(model="claude-test", messages=[{"role": "user", "content": "w"}], tools=tools, stream=True))
    assert all(c.usage is None for c in chunks)  # not asked for
    fragments = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert fragments[0].id and fragments[0].function.name == "get_weather"
    arguments = "".join(f.function.arguments or "" for f in fragments)
    assert json.loads(arguments) == {"location": "mock"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_upstream_errors_reach_the_client_in_its_format(gateway, key, upstream):
    upstream.set_faults(
        [
            {
                "match": {"path": "/v1/chat/completions"},
                "action": {
                    "type": "status",
                    "status": 429,
                    "body": {"error": {"message": "Rate limit reached for gpt-4o", "type": "requests", "code": "rate_limit_exceeded"}},
                    "headers": {"retry-after": "7"},
                },
            },
            {
                "match": {"path": "/v1/messages"},
                "action": {"type": "status", "status": 529, "body": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}},
            },
        ]
    )
    anthropic_client = httpx.post(
        f"{gateway.url}/v1/messages",
        json={"model": "gpt-test", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": key, **NO_RETRY},
    )
    assert anthropic_client.status_code == 429
    assert anthropic_client.json()["error"] == {"type": "rate_limit_error", "message": "Rate limit reached for gpt-4o"}
    assert anthropic_client.headers["retry-after"] == "7"

    openai_client = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "claude-test", "messages": [{"role": "user", "content": "x"}]},
        headers={"authorization": f"Bearer {key}", **NO_RETRY},
    )
    assert openai_client.status_code == 529
    error = openai_client.json()["error"]
    assert error["message"] == "Overloaded" and error["type"] == "server_error"

    with pytest.raises(openai.RateLimitError):
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, default_headers=NO_RETRY).chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "x"}]
        )


def test_count_tokens_on_an_openai_model_is_an_estimate(claude, upstream):
    result = claude.messages.with_raw_response.count_tokens(
        model="gpt-test", messages=[{"role": "user", "content": "how many tokens is this sentence exactly?"}]
    )
    assert result.headers["x-keystile-estimate"] == "true"
    assert result.parse().input_tokens > 0
    assert upstream.requests() == []


def test_embeddings_refused_for_an_anthropic_model(gpt):
    with pytest.raises(openai.BadRequestError) as raised:
        gpt.embeddings.create(model="claude-test", input="x")
    assert "no embeddings API" in str(raised.value)
