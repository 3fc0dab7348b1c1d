"""Streams: Anthropic SSE ⇄ Responses SSE, checked by the official SDKs' own stream parsers.

Every Responses event keystile sends is validated with the ``openai`` SDK's
``ResponseStreamEvent`` union and fed to its stream accumulator (``ResponseStreamState``,
the one behind ``client.responses.stream``), which also checks that items and ids stay
consistent; every Anthropic event goes through the ``anthropic`` SDK's accumulator.
"""

from __future__ import annotations

import json

import orjson
import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from anthropic.types import Message
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from .test_translate_stream_to_openai import MESSAGE_STOP, PING, delta, message_delta, message_start, start, stop, text_events
from .translation_harness import FIXTURES, anthropic_events, anthropic_final_message, openai_final_completion, openai_lines
from keystile.providers.mock_replies_responses import plan_responses, responses_response, responses_stream
from keystile.sse import SSEParser
from keystile.translate.responses.response import responses_response_to_messages
from keystile.translate.responses.stream import MessagesStreamToResponses, ResponsesStreamToMessages
from keystile.translate.stream_to_anthropic import ChatStreamToMessages
from keystile.translate.stream_to_openai import MessagesStreamToChat

EVENT = TypeAdapter(ResponseStreamEvent)


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / "agent_traffic" / f"{name}.json").read_text())


def responses_events(raw: bytes) -> list[tuple[str, dict]]:
    """Responses SSE bytes → [(event name, data)]: names match types, sequence numbers count up."""
    parser = SSEParser()
    events = []
    for event in parser.feed(raw) + parser.close():
        data = orjson.loads(event.data)
        assert event.event == data["type"]
        events.append((event.event, data))
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    return events


def sdk_replay(events: list[tuple[str, dict]]) -> ResponseStreamState:
    """What the OpenAI SDK makes of the stream: every event validated and accumulated."""
    state = ResponseStreamState(input_tools=omit, text_format=omit)
    for _, data in events:
        state.handle_event(EVENT.validate_python(data))
    return state


def final_response(events: list[tuple[str, dict]]) -> Response:
    """The terminal event's response, validated; for a completed stream, as the SDK built it."""
    state = sdk_replay(events)
    name, data = events[-1]
    response = Response.model_validate(data["response"])
    if name == "response.completed":
        assert state._completed_response is not None  # the SDK accepted the stream as complete
        assert _unparsed(state._completed_response.output) == _unparsed(response.output)
    return response


def _unparsed(value: object) -> object:
    """SDK models as plain data, without the SDK's own ``parsed``/``parsed_arguments`` additions."""
    if isinstance(value, list):
        return [_unparsed(v) for v in value]
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: _unparsed(v) for k, v in value.items() if k not in ("parsed", "parsed_arguments")}
    return value


def to_responses(events: list[tuple[str, dict]], request: dict | None = None, *, finish: bool = False) -> tuple[MessagesStreamToResponses, list]:
    translator = MessagesStreamToResponses(request if request is not None else {"model": "claude-via-keystile", "input": "x"})
    out = b"".join(translator.feed(name, orjson.dumps(data)) for name, data in events)
    if finish:
        out += translator.finish()
    return translator, responses_events(out)


def names(events: list[tuple[str, dict]]) -> list[str]:
    return [name for name, _ in events]


# --- Anthropic stream → Responses client ------------------------------------------------------


def test_text_stream_is_the_full_openai_sequence() -> None:
    translator, events = to_responses([message_start(25), PING, *text_events("Hel", "lo"), PING, message_delta("end_turn", 9), MESSAGE_STOP])
    assert names(events) == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed",
    ]
    created = Response.model_validate(events[0][1]["response"])
    assert created.status == "in_progress" and created.output == [] and created.id == "resp_01XYZ"
    response = final_response(events)
    assert response.id == "resp_01XYZ" and response.status == "completed" and response.output_text == "Hello"
    assert response.model == "claude-sonnet-4-5-20250929"
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (25, 9, 34)
    # Codex builds its answer from output_item.done only: that item must be whole
    done = [data["item"] for name, data in events if name == "response.output_item.done"]
    assert done == [response.output[0].model_dump(exclude_none=True)] and done[0]["content"][0]["text"] == "Hello"
    assert translator.finished and translator.usage.output_tokens == 9
    assert translator.feed("ping", b'{"type":"ping"}') == b"" and translator.finish() == b"" and translator.fail(500, "x") == b""


def test_thinking_text_and_every_kind_of_tool_call() -> None:
    request = recorded("codex-gpt55-0001")  # exec_command, apply_patch (custom) …
    request = {**request, "tools": [*request["tools"], {"type": "namespace", "name": "multi_agent_v1", "description": "",
                                                          "tools": [{"type": "function", "name": "spawn_agent", "parameters": {}}]}]}
    events = [
        message_start(10, cache_read_input_tokens=500),
        start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, {"type": "thinking_delta", "thinking": "Let me "}),
        delta(0, {"type": "thinking_delta", "thinking": "look."}),
        delta(0, {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}),
        stop(0),
        *[(n, {**d, "index": 1}) for n, d in text_events("On it.")],
        start(2, {"type": "tool_use", "id": "toolu_1", "name": "exec_command", "input": {}}),
        delta(2, {"type": "input_json_delta", "partial_json": ""}),
        delta(2, {"type": "input_json_delta", "partial_json": '{"cmd": "l'}),
        delta(2, {"type": "input_json_delta", "partial_json": 's"}'}),
        stop(2),
        start(3, {"type": "tool_use", "id": "toolu_2", "name": "apply_patch", "input": {}}),
        delta(3, {"type": "input_json_delta", "partial_json": '{"input": "*** Begin Patch\\n*** Add File: a.txt\\n+\\"hi\\"\\n'}),
        delta(3, {"type": "input_json_delta", "partial_json": '*** End Patch\\n"}'}),
        stop(3),
        start(4, {"type": "tool_use", "id": "toolu_3", "name": "multi_agent_v1__spawn_agent", "input": {}}),
        stop(4),
        message_delta("tool_use", 70),
        MESSAGE_STOP,
    ]
    _, out = to_responses(events, request)
    response = final_response(out)
    assert [item.type for item in response.output] == ["reasoning", "message", "function_call", "custom_tool_call", "function_call"]
    reasoning, message, call, patch, spawn = response.output
    assert [s.text for s in reasoning.summary] == ["Let me look."] and reasoning.encrypted_content == "keystile.thinking:EqQBCgIYAhIM"
    assert message.content[0].text == "On it."
    assert (call.call_id, call.name, json.loads(call.arguments)) == ("toolu_1", "exec_command", {"cmd": "ls"})
    assert (patch.call_id, patch.name, patch.input) == ("toolu_2", "apply_patch", '*** Begin Patch\n*** Add File: a.txt\n+"hi"\n*** End Patch\n')
    assert (spawn.name, spawn.namespace, spawn.arguments) == ("spawn_agent", "multi_agent_v1", "{}")
    deltas = {name: [d["delta"] for n, d in out if n == name] for name in (
        "response.reasoning_summary_text.delta", "response.function_call_arguments.delta", "response.custom_tool_call_input.delta")}
    assert deltas["response.reasoning_summary_text.delta"] == ["Let me ", "look."]
    assert deltas["response.function_call_arguments.delta"] == ['{"cmd": "l', 's"}', "{}"]  # live, then the empty call's "{}"
    assert deltas["response.custom_tool_call_input.delta"] == [patch.input]  # whole, once its JSON is complete
    assert (response.usage.input_tokens, response.usage.input_tokens_details.cached_tokens, response.usage.output_tokens) == (510, 500, 70)
    assert response.reasoning.effort == "high"  # echoed from Codex's request


@pytest.mark.parametrize(("stop_reason", "reason"), [("max_tokens", "max_output_tokens"), ("refusal", "content_filter")])
def test_cut_short_answers_end_incomplete(stop_reason: str, reason: str) -> None:
    _, events = to_responses([message_start(), *text_events("Partial"), message_delta(stop_reason, 5), MESSAGE_STOP])
    assert names(events)[-1] == "response.incomplete" and "response.completed" not in names(events)
    response = final_response(events)
    assert response.status == "incomplete" and response.incomplete_details.reason == reason
    assert response.output_text == "Partial" and response.usage.output_tokens == 5


def test_an_upstream_error_fails_the_response_without_finishing_open_calls() -> None:
    events = [
        message_start(),
        *text_events("Working"),
        start(1, {"type": "tool_use", "id": "toolu_1", "name": "exec_command", "input": {}}),
        delta(1, {"type": "input_json_delta", "partial_json": '{"cmd": "rm -'}),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ]
    translator, out = to_responses(events)
    assert names(out)[-2:] == ["error", "response.failed"]
    assert out[-2][1]["message"] == "Overloaded" and out[-2][1]["code"] == "server_error"
    response = final_response(out)
    assert response.status == "failed" and response.error.code == "server_error" and response.error.message == "Overloaded"
    assert [item.type for item in response.output] == ["message"]  # the half-streamed call was never done
    assert [d["item"]["type"] for n, d in out if n == "response.output_item.done"] == ["message"]
    assert translator.finished and translator.finish() == b""


@pytest.mark.parametrize(("status", "code"), [(502, "server_error"), (429, "rate_limit_exceeded")])
def test_fail_before_anything_is_still_a_whole_failed_stream(status: int, code: str) -> None:
    translator = MessagesStreamToResponses({"model": "m", "input": "x"})
    events = responses_events(translator.fail(status, "upstream went away"))
    assert names(events) == ["response.created", "response.in_progress", "error", "response.failed"]
    response = final_response(events)
    assert response.status == "failed" and response.error.code == code and response.error.message == "upstream went away"
    assert response.model == "m" and translator.finished


def test_finish_closes_what_is_open_and_completes() -> None:
    translator, events = to_responses([message_start(), start(0, {"type": "text", "text": ""}),
                                       delta(0, {"type": "text_delta", "text": "cut"})], finish=True)
    assert names(events)[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"]
    assert final_response(events).output_text == "cut" and translator.finished


def test_redacted_thinking_local_shell_and_odd_input() -> None:
    request = {"model": "m", "input": "x", "tools": [{"type": "local_shell"}]}
    events = [
        message_start(),
        start(0, {"type": "redacted_thinking", "data": "SECRET"}),
        stop(0),
        start(1, {"type": "tool_use", "id": "toolu_1", "name": "local_shell", "input": {}}),
        delta(1, {"type": "input_json_delta", "partial_json": '{"command": ["ls", "-l"], "timeout_ms": 1000}'}),
        stop(1),
        start(2, {"type": "tool_use", "id": "toolu_2", "name": "unknown_tool", "input": {"whole": True}}),  # input up front
        stop(2),
        start(3, {"type": "tool_use", "id": "toolu_3", "name": "local_shell", "input": {}}),
        delta(3, {"type": "input_json_delta", "partial_json": '{"command": "ls -l"}'}),  # not an argv: sent as a plain call
        stop(3),
        ("future_event", {"type": "future_event"}),
        message_delta("tool_use", 3),
        MESSAGE_STOP,
    ]
    _, out = to_responses(events, request)
    response = final_response(out)
    redacted, shell, unknown, not_shell = response.output
    assert redacted.type == "reasoning" and redacted.encrypted_content == "keystile.redacted_thinking:SECRET"
    assert shell.type == "local_shell_call" and shell.call_id == "toolu_1"
    assert shell.action.command == ["ls", "-l"] and shell.action.timeout_ms == 1000
    assert unknown.type == "function_call" and json.loads(unknown.arguments) == {"whole": True}
    assert (not_shell.type, not_shell.name, json.loads(not_shell.arguments)) == ("function_call", "local_shell", {"command": "ls -l"})


def test_garbage_events_are_skipped() -> None:
    translator = MessagesStreamToResponses({})
    assert translator.feed("message_start", b"not json") == b"" and translator.feed("x", b"[1]") == b""
    assert translator.feed("content_block_delta", b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}') == b""
    events = responses_events(translator.finish())
    assert names(events) == ["response.created", "response.in_progress", "response.completed"]
    assert final_response(events).output == []


# --- Responses upstream → Anthropic client ------------------------------------------------


def openai_stream(*events: dict) -> list[tuple[str, bytes]]:
    return [(e["type"], orjson.dumps({**e, "sequence_number": i})) for i, e in enumerate(events)]


RESPONSE = {"id": "resp_abc", "object": "response", "created_at": 1741476542, "status": "in_progress", "model": "gpt-5-2026-01-01",
            "output": [], "usage": None}
USAGE = {"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1024}, "output_tokens": 300,
         "output_tokens_details": {"reasoning_tokens": 256}, "total_tokens": 1500}


def completed(status: str = "completed", **extra) -> dict:
    return {"type": f"response.{status}", "response": {**RESPONSE, "status": status, "usage": USAGE, **extra}}


def added(index: int, item: dict) -> dict:
    return {"type": "response.output_item.added", "output_index": index, "item": item}


def done(index: int, item: dict) -> dict:
    return {"type": "response.output_item.done", "output_index": index, "item": item}


def run_to_messages(events: list[tuple[str, bytes]], *, finish: bool = False) -> tuple[ResponsesStreamToMessages, list]:
    translator = ResponsesStreamToMessages()
    out = b"".join(translator.feed(name, data) for name, data in events)
    if finish:
        out += translator.finish()
    return translator, anthropic_events(out)


REASONING_ITEM = {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": None}
MESSAGE_ITEM = {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
CALL_ITEM = {"id": "fc_1", "type": "function_call", "status": "in_progress", "call_id": "call_1", "name": "Bash", "arguments": ""}


def test_openai_stream_for_an_anthropic_client() -> None:
    events = openai_stream(
        {"type": "response.created", "response": RESPONSE},
        {"type": "response.in_progress", "response": RESPONSE},
        added(0, REASONING_ITEM),
        {"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "output_index": 0, "summary_index": 0, "part": {"type": "summary_text", "text": ""}},
        {"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "summary_index": 0, "delta": "**Plan**"},
        {"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "summary_index": 1, "delta": "List files."},
        done(0, {**REASONING_ITEM, "summary": [{"type": "summary_text", "text": "**Plan**"}, {"type": "summary_text", "text": "List files."}],
                 "encrypted_content": "gAAAAABoENC"}),
        added(1, MESSAGE_ITEM),
        {"type": "response.content_part.added", "item_id": "msg_1", "output_index": 1, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}},
        {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1, "content_index": 0, "delta": "Check", "logprobs": []},
        {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1, "content_index": 0, "delta": "ing.", "logprobs": []},
        {"type": "response.output_text.done", "item_id": "msg_1", "output_index": 1, "content_index": 0, "text": "Checking.", "logprobs": []},
        done(1, {**MESSAGE_ITEM, "status": "completed", "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]}),
        added(2, CALL_ITEM),
        {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 2, "delta": '{"command":'},
        {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 2, "delta": '"ls"}'},
        {"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 2, "arguments": '{"command":"ls"}'},
        done(2, {**CALL_ITEM, "status": "completed", "arguments": '{"command":"ls"}'}),
        completed(),
    )
    translator, out = run_to_messages(events)
    message = anthropic_final_message(out)
    assert message.id == "msg_abc" and message.model == "gpt-5-2026-01-01"
    thinking, text, tool = message.content
    assert thinking.thinking == "**Plan**\n\nList files." and thinking.signature == "keystile.reasoning:gAAAAABoENC"
    assert text.text == "Checking."
    assert (tool.id, tool.name, tool.input) == ("call_1", "Bash", {"command": "ls"})
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (176, 1024, 300)
    assert translator.finished and translator.complete and not translator.failed and translator.usage.output_tokens == 300


def test_items_sent_only_when_done_and_no_created_event() -> None:
    """What the recording server sent Codex and opencode at the minimum: no deltas, or no lifecycle."""
    text_item = {**MESSAGE_ITEM, "status": "completed", "content": [{"type": "output_text", "text": "Hi! (mock gateway reply)", "annotations": []}]}
    events = openai_stream(
        added(0, MESSAGE_ITEM), done(0, text_item),
        done(1, {**CALL_ITEM, "status": "completed", "name": "spawn_agent", "namespace": "multi_agent_v1", "arguments": "{}"}),
        completed(),
    )
    message = anthropic_final_message(run_to_messages(events)[1])
    assert message.content[0].text == "Hi! (mock gateway reply)"
    assert (message.content[1].name, message.content[1].input) == ("multi_agent_v1__spawn_agent", {})
    assert message.stop_reason == "tool_use" and message.id.startswith("msg_")


def test_custom_tool_call_input_is_escaped_into_json_piece_by_piece() -> None:
    item = {"id": "ctc_1", "type": "custom_tool_call", "call_id": "call_9", "name": "apply_patch", "input": ""}
    patch = '*** Begin Patch\n+say "hi" \\ \u00e9\n*** End Patch\n'
    events = openai_stream(
        {"type": "response.created", "response": RESPONSE}, added(0, item),
        *[{"type": "response.custom_tool_call_input.delta", "item_id": "ctc_1", "output_index": 0, "delta": piece} for piece in (patch[:9], patch[9:20], patch[20:])],
        done(0, {**item, "input": patch}), completed(),
    )
    message = anthropic_final_message(run_to_messages(events)[1])
    assert message.content[0].input == {"input": patch} and message.content[0].name == "apply_patch"


@pytest.mark.parametrize(("reason", "stop_reason"), [("max_output_tokens", "max_tokens"), ("content_filter", "refusal")])
def test_incomplete_for_a_known_reason_is_a_stop_reason(reason: str, stop_reason: str) -> None:
    events = openai_stream({"type": "response.created", "response": RESPONSE},
                           {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "Part", "logprobs": []},
                           completed("incomplete", incomplete_details={"reason": reason}))
    translator, out = run_to_messages(events)
    message = anthropic_final_message(out)
    assert message.stop_reason == stop_reason and message.content[0].text == "Part" and not translator.failed


@pytest.mark.parametrize(
    ("terminal", "error_type", "message"),
    [
        (completed("failed", error={"code": "server_error", "message": "The model failed to generate a response."}),
         "api_error", "The model failed to generate a response."),
        (completed("failed", error={"code": "rate_limit_exceeded", "message": "Rate limit reached. Try again in 2s."}),
         "rate_limit_error", "Rate limit reached. Try again in 2s."),
        ({"type": "error", "code": "server_error", "message": "boom", "param": None}, "api_error", "boom"),
        (completed("incomplete", incomplete_details={"reason": "max_messages"}), "api_error", "upstream response is incomplete (reason: max_messages)"),
    ],
    ids=["failed", "failed rate limit", "error event", "incomplete for another reason"],
)
def test_upstream_failures_are_anthropic_error_events(terminal: dict, error_type: str, message: str) -> None:
    events = openai_stream({"type": "response.created", "response": RESPONSE},
                           {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "Part", "logprobs": []},
                           terminal)
    translator, out = run_to_messages(events)
    assert out[-1] == ("error", {"type": "error", "error": {"type": error_type, "message": message}})
    assert "message_stop" not in [name for name, _ in out]
    assert translator.finished and translator.failed and not translator.complete
    assert translator.feed("response.completed", orjson.dumps(completed())) == b""


def test_finish_and_fail() -> None:
    events = openai_stream({"type": "response.created", "response": RESPONSE}, added(0, CALL_ITEM),
                           {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 0, "delta": '{"command":"ls"}'})
    translator, out = run_to_messages(events, finish=True)
    message = anthropic_final_message(out)
    assert message.stop_reason == "tool_use" and message.content[0].input == {"command": "ls"}
    assert not translator.failed and not translator.complete  # finish() closes, it does not make the upstream's end proper
    translator = ResponsesStreamToMessages()
    out = anthropic_events(translator.fail(503, "gateway shutting down"))
    assert out == [("error", {"type": "error", "error": {"type": "api_error", "message": "gateway shutting down"}})]
    assert translator.finished and not translator.failed  # fail() is keystile's side, not the upstream's


def test_refusal_deltas() -> None:
    events = openai_stream({"type": "response.refusal.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "I can't."}, completed())
    message = anthropic_final_message(run_to_messages(events)[1])
    assert message.content[0].text == "I can't." and message.stop_reason == "refusal"


# --- both ways, and through the hub -----------------------------------------------------------


def test_a_claude_stream_survives_responses_and_back() -> None:
    events = [
        message_start(30, cache_read_input_tokens=200),
        start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, {"type": "thinking_delta", "thinking": "Hmm."}),
        delta(0, {"type": "signature_delta", "signature": "SIG"}),
        stop(0),
        *[(n, {**d, "index": 1}) for n, d in text_events("Here ", "you go.")],
        start(2, {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}),
        delta(2, {"type": "input_json_delta", "partial_json": '{"command": "ls -la"}'}),
        stop(2),
        message_delta("tool_use", 12),
        MESSAGE_STOP,
    ]
    original = anthropic_final_message([(n, d) for n, d in events])
    _, responses = to_responses(events)
    back = ResponsesStreamToMessages()
    raw = b"".join(back.feed(name, orjson.dumps(data)) for name, data in responses)
    message = anthropic_final_message(anthropic_events(raw))
    assert message.content[0].signature == "keystile.reasoning:keystile.thinking:SIG"
    message.content[0].signature = "SIG"
    assert message.content == original.content
    assert message.stop_reason == "tool_use" and message.usage.output_tokens == 12
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (30, 200)


def test_chat_upstream_stream_reaches_a_responses_client_through_the_hub() -> None:
    chunks = [
        {"id": "chatcmpl-9", "model": "gpt-4.1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Run"}}]},
        {"id": "chatcmpl-9", "model": "gpt-4.1", "choices": [{"index": 0, "delta": {"content": "ning."}}]},
        {"id": "chatcmpl-9", "model": "gpt-4.1", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "apply_patch", "arguments": '{"input": "*** Begin'}}]}}]},
        {"id": "chatcmpl-9", "model": "gpt-4.1", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": ' Patch\\n"}'}}]}, "finish_reason": "tool_calls"}]},
        {"id": "chatcmpl-9", "model": "gpt-4.1", "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57}},
    ]
    hub = ChatStreamToMessages()
    raw = b"".join(hub.feed(orjson.dumps(c)) for c in chunks) + hub.feed(b"[DONE]")
    translator = MessagesStreamToResponses(recorded("codex-gpt55-0001"))
    out = b"".join(translator.feed(name, orjson.dumps(data)) for name, data in anthropic_events(raw))
    response = final_response(responses_events(out))
    assert response.output_text == "Running."
    assert (response.output[1].type, response.output[1].input) == ("custom_tool_call", "*** Begin Patch\n")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (50, 7)


def test_responses_upstream_stream_reaches_a_chat_client_through_the_hub() -> None:
    events = openai_stream(
        {"type": "response.created", "response": RESPONSE},
        {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "Done.", "logprobs": []},
        added(1, CALL_ITEM),
        {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1, "delta": '{"command":"ls"}'},
        done(1, {**CALL_ITEM, "arguments": '{"command":"ls"}'}),
        completed(),
    )
    hub = ResponsesStreamToMessages()
    raw = b"".join(hub.feed(name, data) for name, data in events)
    chat = MessagesStreamToChat(include_usage=True)
    lines = openai_lines(b"".join(chat.feed(name, orjson.dumps(data)) for name, data in anthropic_events(raw)))
    completion = openai_final_completion(lines)
    assert completion.choices[0].message.content == "Done." and completion.choices[0].finish_reason == "tool_calls"
    assert completion.choices[0].message.tool_calls[0].function.name == "Bash"
    assert (completion.usage.prompt_tokens, completion.usage.prompt_tokens_details.cached_tokens) == (1200, 1024)


def test_a_server_that_leaves_out_output_index_still_gets_through() -> None:
    events = openai_stream({"type": "response.output_text.delta", "delta": "Hel"}, {"type": "response.output_text.delta", "delta": "lo"},
                           {"type": "response.output_item.done", "item": {"type": "message", "content": [{"type": "output_text", "text": "Hello"}]}},
                           completed())
    message = anthropic_final_message(run_to_messages(events)[1])
    assert [block.text for block in message.content] == ["Hello"] and message.stop_reason == "end_turn"


@pytest.mark.parametrize("tools", [[], [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]],
                         ids=["text", "tool call"])
def test_the_mock_upstreams_responses_stream_and_body_decode(tools: list) -> None:
    """keystile's mock Responses upstream is written by hand, apart from these translators."""
    body = {"model": "gpt-mock", "input": "hello there", "stream": True, "tools": tools}
    reply = plan_responses(body)
    parser = SSEParser()
    translator = ResponsesStreamToMessages()
    raw = b"".join(translator.feed(e.event, e.data) for chunk in responses_stream(body) for e in parser.feed(chunk))
    streamed = anthropic_final_message(anthropic_events(raw))
    whole = responses_response_to_messages(responses_response(body))
    for message in (streamed, Message.model_validate(whole)):
        if reply.tool_call is None:
            assert [b.text for b in message.content] == [reply.text] and message.stop_reason == "end_turn"
        else:
            assert [b.type for b in message.content] == ["tool_use"] and message.stop_reason == "tool_use"
            assert message.content[0].name == "get_weather"
        assert (message.usage.input_tokens, message.usage.output_tokens) == (reply.usage.input_tokens, reply.usage.output_tokens)
    assert translator.complete
