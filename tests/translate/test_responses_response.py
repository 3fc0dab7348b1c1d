"""Whole answers: Anthropic message ⇄ Responses ``response``, parsed by the official SDKs' types."""

from __future__ import annotations

import json

import pytest
from anthropic.types import Message
from openai.types.responses import Response

from .translation_harness import FIXTURES
from keystile.errors import ErrorKind, GatewayError
from keystile.translate.responses.request import responses_request_to_messages
from keystile.translate.responses.response import messages_response_to_responses, responses_response_to_messages


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / "agent_traffic" / f"{name}.json").read_text())


CLAUDE_MESSAGE = {
    "id": "msg_01XYZ",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "thinking", "thinking": "The user wants a listing.", "signature": "EqQBCgIYAhIM"},
        {"type": "text", "text": "Let me "},
        {"type": "text", "text": "check."},
        {"type": "tool_use", "id": "toolu_01", "name": "exec_command", "input": {"cmd": "ls"}},
        {"type": "tool_use", "id": "toolu_02", "name": "multi_agent_v1__spawn_agent", "input": {"message": "go"}},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 100, "output_tokens": 40, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 300},
}


def test_claude_message_for_codex() -> None:
    request = recorded("codex-toolcall-0002")
    out = messages_response_to_responses(CLAUDE_MESSAGE, request=request)
    response = Response.model_validate(out)
    assert response.id == "resp_01XYZ" and response.object == "response" and response.status == "completed"
    assert response.model == "claude-sonnet-4-5-20250929"
    assert [item.type for item in response.output] == ["reasoning", "message", "function_call", "function_call"]
    reasoning, message, call, namespaced = response.output
    assert reasoning.summary[0].text == "The user wants a listing."
    assert reasoning.encrypted_content == "keystile.thinking:EqQBCgIYAhIM"
    assert message.role == "assistant" and len(message.content) == 1 and response.output_text == "Let me check."
    assert (call.call_id, call.name, json.loads(call.arguments), call.namespace) == ("toolu_01", "exec_command", {"cmd": "ls"}, None)
    assert (namespaced.name, namespaced.namespace, json.loads(namespaced.arguments)) == ("spawn_agent", "multi_agent_v1", {"message": "go"})
    assert len({item.id for item in response.output}) == 4  # item ids are unique
    # usage: Responses counts cached and cache-written tokens inside input_tokens
    assert (response.usage.input_tokens, response.usage.input_tokens_details.cached_tokens) == (2400, 2000)
    assert (response.usage.output_tokens, response.usage.total_tokens) == (40, 2440)
    # the request's settings are echoed, OpenAI's defaults filling the gaps
    assert out["tools"] == request["tools"] and len(response.tools) == len(request["tools"])
    assert response.tool_choice == "auto" and response.parallel_tool_calls is True
    assert response.reasoning.summary == "auto" and response.reasoning.effort is None
    assert response.temperature == 1.0 and response.top_p == 1.0 and response.store is False
    assert response.previous_response_id is None and response.error is None and response.incomplete_details is None
    assert response.prompt_cache_key == request["prompt_cache_key"]


def test_custom_tool_call_for_codex() -> None:
    message = {**CLAUDE_MESSAGE, "content": [
        {"type": "tool_use", "id": "toolu_03", "name": "apply_patch", "input": {"input": "*** Begin Patch\n*** End Patch\n"}},
        {"type": "tool_use", "id": "toolu_04", "name": "apply_patch", "input": {"patch": "not what was asked"}},
    ]}
    response = Response.model_validate(messages_response_to_responses(message, request=recorded("codex-gpt55-0001")))
    first, second = response.output
    assert (first.type, first.call_id, first.name, first.input) == ("custom_tool_call", "toolu_03", "apply_patch", "*** Begin Patch\n*** End Patch\n")
    assert second.type == "custom_tool_call" and json.loads(second.input) == {"patch": "not what was asked"}
    assert response.reasoning.effort == "high"


@pytest.mark.parametrize(
    ("stop_reason", "status", "reason"),
    [("max_tokens", "incomplete", "max_output_tokens"), ("model_context_window_exceeded", "incomplete", "max_output_tokens"),
     ("refusal", "incomplete", "content_filter"), ("end_turn", "completed", None), ("stop_sequence", "completed", None),
     ("pause_turn", "completed", None), (None, "completed", None)],
)
def test_stop_reasons(stop_reason, status: str, reason) -> None:
    message = {**CLAUDE_MESSAGE, "content": [{"type": "text", "text": "Partial"}], "stop_reason": stop_reason}
    response = Response.model_validate(messages_response_to_responses(message, request={"model": "m", "input": "x"}))
    assert response.status == status
    assert (response.incomplete_details.reason if response.incomplete_details else None) == reason
    assert (response.completed_at is not None) == (status == "completed")
    assert response.output_text == "Partial"


def test_redacted_thinking_and_echoed_request_fields() -> None:
    message = {"id": "msg_2", "content": [{"type": "redacted_thinking", "data": "ENCRYPTED"}, {"type": "text", "text": "ok"}], "stop_reason": "end_turn"}
    request = {"model": "claude-via-keystile", "input": "x", "instructions": "Be terse.", "max_output_tokens": 500, "temperature": 0.5,
               "tool_choice": "none", "text": {"format": {"type": "text"}, "verbosity": "low"}, "metadata": {"k": "v"}, "user": "u-1"}
    response = Response.model_validate(messages_response_to_responses(message, request=request))
    assert response.output[0].type == "reasoning" and response.output[0].summary == []
    assert response.output[0].encrypted_content == "keystile.redacted_thinking:ENCRYPTED"
    assert response.model == "claude-via-keystile"  # the upstream named none
    assert (response.instructions, response.max_output_tokens, response.temperature, response.tool_choice) == ("Be terse.", 500, 0.5, "none")
    assert response.text.verbosity == "low" and response.metadata == {"k": "v"} and response.user == "u-1"
    assert response.usage.input_tokens == 0 and response.usage.output_tokens == 0


@pytest.mark.parametrize("bad", [None, [], "x", {}, {"content": "text"}])
def test_garbage_from_anthropic_is_an_upstream_error(bad: object) -> None:
    with pytest.raises(GatewayError) as caught:
        messages_response_to_responses(bad, request={})
    assert caught.value.kind is ErrorKind.UPSTREAM_ERROR


# --- Responses upstream → Anthropic client ----------------------------------------------------

OPENAI_RESPONSE = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "object": "response",
    "created_at": 1741476542,
    "status": "completed",
    "model": "gpt-5-2026-01-01",
    "output": [
        {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "**Planning**"}, {"type": "summary_text", "text": "List files."}],
         "encrypted_content": "gAAAAABoENC"},
        {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
         "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
        {"id": "fc_1", "type": "function_call", "status": "completed", "call_id": "call_1", "name": "Bash", "arguments": "{\"command\":\"ls\"}"},
        {"id": "ws_1", "type": "web_search_call", "status": "completed", "action": {"type": "search", "query": "x"}},
    ],
    "usage": {"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1024}, "output_tokens": 300,
              "output_tokens_details": {"reasoning_tokens": 256}, "total_tokens": 1500},
    "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
}


def test_openai_response_for_an_anthropic_client() -> None:
    out = responses_response_to_messages(OPENAI_RESPONSE)
    message = Message.model_validate(out)
    assert message.id == "msg_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b" and message.model == "gpt-5-2026-01-01"
    thinking, text, tool = message.content
    assert thinking.type == "thinking" and thinking.thinking == "**Planning**\n\nList files."
    assert thinking.signature == "keystile.reasoning:gAAAAABoENC"
    assert text.type == "text" and text.text == "Checking."
    assert (tool.type, tool.id, tool.name, tool.input) == ("tool_use", "call_1", "Bash", {"command": "ls"})
    assert message.stop_reason == "tool_use"
    # 1,200 input of which 1,024 cached; the 256 reasoning tokens are part of the 300 output
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (176, 1024, 300)


@pytest.mark.parametrize(
    ("status", "details", "stop_reason"),
    [("incomplete", {"reason": "max_output_tokens"}, "max_tokens"), ("incomplete", {"reason": "content_filter"}, "refusal"),
     ("completed", None, "end_turn")],
)
def test_openai_statuses(status: str, details, stop_reason: str) -> None:
    response = {**OPENAI_RESPONSE, "status": status, "incomplete_details": details, "output": [OPENAI_RESPONSE["output"][1]]}
    assert Message.model_validate(responses_response_to_messages(response)).stop_reason == stop_reason


def test_openai_refusal_and_custom_tool_call() -> None:
    response = {**OPENAI_RESPONSE, "output": [
        {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed", "content": [{"type": "refusal", "refusal": "I can't help with that."}]},
    ]}
    message = Message.model_validate(responses_response_to_messages(response))
    assert message.content[0].text == "I can't help with that." and message.stop_reason == "refusal"
    response = {**OPENAI_RESPONSE, "output": [
        {"id": "ctc_1", "type": "custom_tool_call", "call_id": "call_7", "name": "apply_patch", "input": "*** Begin Patch", "namespace": "files"}]}
    message = Message.model_validate(responses_response_to_messages(response))
    assert (message.content[0].name, message.content[0].input) == ("files__apply_patch", {"input": "*** Begin Patch"})


@pytest.mark.parametrize(
    "response",
    [
        {**OPENAI_RESPONSE, "status": "failed", "error": {"code": "server_error", "message": "The model failed to generate a response."}},
        {**OPENAI_RESPONSE, "status": "incomplete", "incomplete_details": {"reason": "max_messages"}},
        None, [], {}, {"output": "x"},
    ],
    ids=["failed", "incomplete for another reason", "null", "list", "empty", "bad output"],
)
def test_openai_failures_are_upstream_errors(response) -> None:
    with pytest.raises(GatewayError) as caught:
        responses_response_to_messages(response)
    assert caught.value.kind is ErrorKind.UPSTREAM_ERROR and caught.value.status == 502


def test_round_trip_keeps_claude_thinking_and_tool_calls() -> None:
    """Claude → Responses client → back to Claude (the client sends the output items back)."""
    request = recorded("codex-toolcall-0002")
    response = messages_response_to_responses(CLAUDE_MESSAGE, request=request)
    follow_up = {**request, "input": [*request["input"], *response["output"],
                                      {"type": "function_call_output", "call_id": "toolu_01", "output": "a.txt"},
                                      {"type": "function_call_output", "call_id": "toolu_02", "output": "spawned"}]}
    body = responses_request_to_messages(follow_up, upstream_model="claude-sonnet-4-5", default_max_tokens=4096)
    assistant = body["messages"][-2]
    expected = [block for block in CLAUDE_MESSAGE["content"] if block["type"] != "server_tool_use"]
    expected[1:3] = [{"type": "text", "text": "Let me check."}]
    assert assistant == {"role": "assistant", "content": expected}


def test_unsigned_thinking_from_a_chat_upstream_round_trips_unsigned() -> None:
    """A Chat upstream's reasoning_content reaches a Responses client and comes back as it was."""
    message = {"id": "msg_3", "content": [{"type": "thinking", "thinking": "DeepSeek thinks", "signature": ""},
                                          {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}], "stop_reason": "tool_use"}
    response = messages_response_to_responses(message, request={"model": "m", "input": "x"})
    Response.model_validate(response)
    follow_up = {"input": [{"role": "user", "content": "q"}, *response["output"],
                           {"type": "function_call_output", "call_id": "call_1", "output": "ok"}]}
    body = responses_request_to_messages(follow_up, upstream_model="deepseek", default_max_tokens=100)
    assert body["messages"][1]["content"][0] == {"type": "thinking", "thinking": "DeepSeek thinks", "signature": ""}
