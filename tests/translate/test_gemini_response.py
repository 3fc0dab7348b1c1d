"""Non-streaming Gemini ⇄ Messages responses, judged by the official SDKs, and round trips through
each side's clients (thinking and ``thoughtSignature`` must survive them)."""

from __future__ import annotations

import base64
import json

import orjson
import pytest

from .gemini_harness import GeminiSDKServer
from keystile.errors import ErrorKind, GatewayError
from keystile.translate.gemini.models import gemini_model, gemini_model_list
from keystile.translate.gemini.request import gemini_request_to_messages, messages_request_to_gemini
from keystile.translate.gemini.response import gemini_response_to_messages, messages_response_to_gemini


def claude_message(content: list[dict], stop_reason: str = "end_turn", **usage) -> dict:
    return {
        "id": "msg_01ABC", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": content, "stop_reason": stop_reason, "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": 9, **usage},
    }


def decode_carrier(signature: str) -> list[dict]:
    raw = base64.b64decode(signature)
    assert raw.startswith(b"keystile:thinking:")
    return json.loads(raw[len(b"keystile:thinking:"):])


THINKING = {"type": "thinking", "thinking": "The user wants a listing.", "signature": "EqQBCgIYAhIMsig"}
REDACTED = {"type": "redacted_thinking", "data": "EmwKAhgBEgy"}
TOOL_USE = {"type": "tool_use", "id": "toolu_01XYZ", "name": "list_directory", "input": {"dir_path": "."}}


# --- Messages → Gemini ----------------------------------------------------------------------


def test_text_answer_through_the_sdk() -> None:
    response = messages_response_to_gemini(
        claude_message([{"type": "text", "text": "Hello"}, {"type": "text", "text": " there"}],
                       cache_read_input_tokens=100, cache_creation_input_tokens=5),
        model="gemini-2.5-pro",
    )
    with GeminiSDKServer() as server:
        server.queue(orjson.dumps(response))
        client = server.client()  # kept in a name: the SDK closes its HTTP client when collected
        result = client.models.generate_content(model="gemini-2.5-pro", contents="hi")
    assert result.text == "Hello there"
    assert result.candidates[0].finish_reason.value == "STOP"
    assert result.response_id == "msg_01ABC" and result.model_version == "gemini-2.5-pro"
    usage = result.usage_metadata
    # Gemini's prompt count includes cached tokens: 20 + 100 read + 5 written.
    assert (usage.prompt_token_count, usage.cached_content_token_count, usage.candidates_token_count, usage.total_token_count) == (125, 100, 9, 134)


def test_thinking_and_a_tool_call() -> None:
    response = messages_response_to_gemini(claude_message([THINKING, REDACTED, TOOL_USE], "tool_use"), model="m")
    from google.genai import types

    parsed = types.GenerateContentResponse.model_validate_json(orjson.dumps(response))
    parts = response["candidates"][0]["content"]["parts"]
    assert parts[0] == {"text": THINKING["thinking"], "thought": True}
    assert parts[1]["functionCall"] == {"id": "toolu_01XYZ", "name": "list_directory", "args": {"dir_path": "."}}
    assert decode_carrier(parts[1]["thoughtSignature"]) == [THINKING, REDACTED]
    assert len(parts) == 2
    assert parsed.function_calls[0].id == "toolu_01XYZ"
    assert response["candidates"][0]["finishReason"] == "STOP"


def test_a_message_ending_in_thinking_carries_it_on_an_empty_part() -> None:
    response = messages_response_to_gemini(claude_message([THINKING], "max_tokens"), model="m")
    parts = response["candidates"][0]["content"]["parts"]
    assert parts[0] == {"text": THINKING["thinking"], "thought": True}
    assert parts[1]["text"] == "" and decode_carrier(parts[1]["thoughtSignature"]) == [THINKING]
    assert response["candidates"][0]["finishReason"] == "MAX_TOKENS"


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "STOP"), ("stop_sequence", "STOP"), ("tool_use", "STOP"), ("pause_turn", "STOP"),
    ("max_tokens", "MAX_TOKENS"), ("model_context_window_exceeded", "MAX_TOKENS"), ("refusal", "SAFETY"), (None, "STOP"),
])
def test_stop_reasons(stop_reason, finish: str) -> None:
    response = messages_response_to_gemini(claude_message([{"type": "text", "text": "x"}], stop_reason), model="m")
    assert response["candidates"][0]["finishReason"] == finish


def test_not_a_message_is_an_upstream_error() -> None:
    with pytest.raises(GatewayError) as caught:
        messages_response_to_gemini({"type": "error"}, model="m")
    assert caught.value.kind is ErrorKind.UPSTREAM_ERROR


# --- Gemini → Messages ----------------------------------------------------------------------


def gemini_response(parts: list[dict], finish: str = "STOP", **extra) -> dict:
    return {
        "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": finish, "index": 0}],
        "usageMetadata": {"promptTokenCount": 1200, "candidatesTokenCount": 40, "totalTokenCount": 1540,
                          "thoughtsTokenCount": 300, "cachedContentTokenCount": 1000},
        "modelVersion": "gemini-3-pro-preview", "responseId": "AdVRaMmDCYekqtsPrb_-iAw", **extra,
    }


def validate_message(message: dict):
    from anthropic.types import Message

    return Message.model_validate(message)


def test_gemini_3_tool_call_with_signature() -> None:
    parts = [
        {"text": "**Listing files**\n\nI will list the directory.", "thought": True},
        {"functionCall": {"name": "ls", "args": {"dir": "."}}, "thoughtSignature": "CiQBjz1rX2Fa"},
        {"functionCall": {"name": "cat", "args": {"path": "a"}}},
    ]
    message = gemini_response_to_messages(gemini_response(parts), model="gemini-3-pro-preview")
    validate_message(message)
    blocks = message["content"]
    assert blocks[0] == {"type": "thinking", "thinking": parts[0]["text"], "signature": ""}
    assert blocks[1] == {"type": "thinking", "thinking": "", "signature": "gemini-next:CiQBjz1rX2Fa"}
    assert [(b["type"], b["name"], b["input"]) for b in blocks[2:]] == [("tool_use", "ls", {"dir": "."}), ("tool_use", "cat", {"path": "a"})]
    assert blocks[2]["id"].startswith("toolu_") and blocks[2]["id"] != blocks[3]["id"]
    assert message["stop_reason"] == "tool_use"
    # input: 1200 prompt - 1000 cached; output: 40 answer + 300 thinking.
    assert message["usage"] == {"input_tokens": 200, "output_tokens": 340, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1000}
    assert message["id"] == "msg_AdVRaMmDCYekqtsPrb_-iAw" and message["model"] == "gemini-3-pro-preview"


def test_gemini_call_ids_are_kept() -> None:
    message = gemini_response_to_messages(gemini_response([{"functionCall": {"id": "c1x9", "name": "ls", "args": {}}}]), model="m")
    assert message["content"][0]["id"] == "c1x9"


@pytest.mark.parametrize(("finish", "stop_reason"), [
    ("STOP", "end_turn"), ("MAX_TOKENS", "max_tokens"), ("SAFETY", "refusal"), ("RECITATION", "refusal"),
    ("PROHIBITED_CONTENT", "refusal"), ("OTHER", "end_turn"), ("FINISH_REASON_UNSPECIFIED", "end_turn"), ("SOMETHING_NEW", "end_turn"),
])
def test_finish_reasons(finish: str, stop_reason: str) -> None:
    message = gemini_response_to_messages(gemini_response([{"text": "partial"}], finish), model="m")
    validate_message(message)
    assert message["stop_reason"] == stop_reason


@pytest.mark.parametrize("finish", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "MISSING_THOUGHT_SIGNATURE"])
def test_malformed_turns_are_upstream_errors(finish: str) -> None:
    body = gemini_response([], finish)
    body["candidates"][0]["finishMessage"] = "Malformed function call: print(x"
    with pytest.raises(GatewayError) as caught:
        gemini_response_to_messages(body, model="m")
    assert caught.value.kind is ErrorKind.UPSTREAM_ERROR and finish in caught.value.message


def test_a_blocked_prompt_is_a_refusal() -> None:
    body = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}}
    message = gemini_response_to_messages(body, model="gemini-2.5-flash")
    validate_message(message)
    assert message["content"] == [] and message["stop_reason"] == "refusal"
    assert message["usage"] == {"input_tokens": 7, "output_tokens": 0}


def test_no_candidates_without_a_reason_is_an_upstream_error() -> None:
    with pytest.raises(GatewayError):
        gemini_response_to_messages({"usageMetadata": {}}, model="m")


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("parts", [
    pytest.param([
        {"text": "**Plan**", "thought": True},
        {"functionCall": {"name": "ls", "args": {"d": "."}}, "thoughtSignature": "Q2lZQmp6MXI="},
        {"functionCall": {"name": "cat", "args": {}}},
    ], id="gemini 3 function calls"),
    pytest.param([{"text": "Hello"}, {"text": " world"}, {"text": "", "thoughtSignature": "ZW5k"}], id="signature on a final empty part"),
    pytest.param([{"text": "t1", "thought": True, "thoughtSignature": "dDE="}, {"text": "Answer", "thoughtSignature": "YW5z"}], id="signed thought, signed text"),
])
def test_gemini_parts_survive_an_anthropic_client(parts: list[dict]) -> None:
    """Gemini upstream → Anthropic client → next request to the same upstream: the parts come back as sent."""
    message = gemini_response_to_messages(gemini_response(parts), model="m")
    kept = validate_message(message).model_dump(mode="json", exclude_none=True)["content"]  # what the client keeps
    history = {"max_tokens": 100, "messages": [{"role": "user", "content": "go"}, {"role": "assistant", "content": kept}]}
    sent = messages_request_to_gemini(history)["contents"][1]["parts"]
    expected = [dict(p) for p in parts]
    merged: list[dict] = []
    for part in expected:  # consecutive unsigned text parts come back as one part
        if merged and set(part) == {"text"} and set(merged[-1]) == {"text"}:
            merged[-1] = {"text": merged[-1]["text"] + part["text"]}
        else:
            merged.append(part)
    assert sent == merged


def test_claudes_thinking_survives_a_gemini_client() -> None:
    """Claude → Gemini client (which drops thought parts and renames call ids ``name__id``) → next request."""
    first = messages_response_to_gemini(claude_message([THINKING, REDACTED, {"type": "text", "text": "Listing."}, TOOL_USE], "tool_use"), model="m")
    model_parts = []
    for part in first["candidates"][0]["content"]["parts"]:
        if part.get("thought"):
            continue  # Gemini CLI strips thoughts from its history
        part = dict(part)
        if "functionCall" in part:
            call = dict(part["functionCall"])
            call["id"] = f"{call['name']}__{call['id']}"
            part["functionCall"] = call
        model_parts.append(part)
    next_request = {
        "contents": [
            {"role": "user", "parts": [{"text": "list it"}]},
            {"role": "model", "parts": model_parts},
            {"role": "user", "parts": [{"functionResponse": {"id": "list_directory__toolu_01XYZ", "name": "list_directory", "response": {"output": "a.txt"}}}]},
        ],
        "generationConfig": {"thinkingConfig": {"thinkingBudget": 4096}},
    }
    out = gemini_request_to_messages(next_request, upstream_model="claude-sonnet-4-5", stream=False, default_max_tokens=4096)
    assert out["messages"][1]["content"] == [
        THINKING, REDACTED, {"type": "text", "text": "Listing."},
        {"type": "tool_use", "id": "list_directory__toolu_01XYZ", "name": "list_directory", "input": {"dir_path": "."}},
    ]
    assert out["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "list_directory__toolu_01XYZ", "content": "a.txt"}]
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 4096}  # the tool loop kept its thinking


# --- models ---------------------------------------------------------------------------------


def test_model_list_through_the_sdk() -> None:
    with GeminiSDKServer() as server:
        client = server.client()
        server.queue(orjson.dumps(gemini_model_list(["claude-sonnet-4-5", "models/gpt-5"])))
        models = list(client.models.list())
        server.queue(orjson.dumps(gemini_model("gemini-2.5-pro")))
        one = client.models.get(model="gemini-2.5-pro")
    assert [m.name for m in models] == ["models/claude-sonnet-4-5", "models/gpt-5"]
    assert [m.display_name for m in models] == ["claude-sonnet-4-5", "gpt-5"]
    assert all(m.supported_actions == ["generateContent", "streamGenerateContent", "countTokens"] for m in models)
    assert one.name == "models/gemini-2.5-pro"
    assert [r[0] for r in server.requests] == ["GET", "GET"]
