"""Gemini request ⇄ Messages request: fixture tables, recorded Gemini CLI / opencode / Claude Code bodies,
and the SDK's own types for what goes to Gemini."""

from __future__ import annotations

import base64
import copy
import hashlib
import json

import orjson
import pytest

from .translation_harness import FIXTURES, case_params, load_cases
from keystile.errors import ErrorKind, GatewayError
from keystile.translate.claude_code import without_billing_header
from keystile.translate.gemini.request import (
    gemini_count_tokens_response,
    gemini_count_tokens_to_messages,
    gemini_request_to_messages,
    messages_request_to_gemini,
)

TO_MESSAGES = {"upstream_model": "claude-sonnet-4-5", "stream": False, "default_max_tokens": 4096}


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / "gemini" / name).read_text())


def _run(function, case: dict, defaults: dict):
    kwargs = {**defaults, **case.get("kwargs", {})}
    if "error" in case:
        with pytest.raises(GatewayError) as caught:
            function(case["input"], **kwargs)
        assert caught.value.kind is ErrorKind.INVALID_REQUEST
        assert caught.value.status == 400
        assert caught.value.param == case["error"]["param"]
        assert case["error"]["param"] in caught.value.message
    else:
        assert function(case["input"], **kwargs) == case["expected"]


@pytest.mark.parametrize("case", case_params("gemini_request_to_messages.json"))
def test_gemini_request_to_messages(case: dict) -> None:
    _run(gemini_request_to_messages, case, TO_MESSAGES)


@pytest.mark.parametrize("case", case_params("messages_request_to_gemini.json"))
def test_messages_request_to_gemini(case: dict) -> None:
    _run(messages_request_to_gemini, case, {})


def test_inputs_are_not_mutated() -> None:
    for name, function, kwargs in (
        ("gemini_request_to_messages.json", gemini_request_to_messages, TO_MESSAGES),
        ("messages_request_to_gemini.json", messages_request_to_gemini, {}),
    ):
        for case in load_cases(name):
            if "error" in case:
                continue
            before = copy.deepcopy(case["input"])
            function(case["input"], **kwargs)
            assert case["input"] == before, case["name"]


def test_gemini_output_is_valid_for_the_sdk_types() -> None:
    """Every Gemini body produced parses with google-genai's types, which forbid unknown fields."""
    from google.genai import types

    bodies = [messages_request_to_gemini(c["input"]) for c in load_cases("messages_request_to_gemini.json") if "error" not in c]
    bodies.append(messages_request_to_gemini(without_billing_header(recorded("claude-code-main.json"))))
    for body in bodies:
        for content in body["contents"]:
            types.Content.model_validate_json(orjson.dumps(content))
        if "systemInstruction" in body:
            types.Content.model_validate_json(orjson.dumps(body["systemInstruction"]))
        for tool in body.get("tools", []):
            types.Tool.model_validate_json(orjson.dumps(tool))
        if "toolConfig" in body:
            types.ToolConfig.model_validate_json(orjson.dumps(body["toolConfig"]))
        if "generationConfig" in body:
            types.GenerationConfig.model_validate_json(orjson.dumps(body["generationConfig"]))
        assert set(body) <= {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig"}


# --- recorded clients ---------------------------------------------------------------------


def test_gemini_cli_routing_call() -> None:
    """Gemini CLI's JSON-mode routing call (upper-case types in responseJsonSchema, thinkingLevel HIGH)."""
    body = recorded("gemini-cli-routing.json")
    out = gemini_request_to_messages(body, **TO_MESSAGES)
    assert out["system"] == body["systemInstruction"]["parts"][0]["text"]
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": p["parts"][0]["text"]} for p in body["contents"]]}
    ]
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": {
        "type": "object",
        "properties": {
            "complexity_reasoning": {"type": "string", "description": "Brief explanation for the score."},
            "complexity_score": {"type": "integer", "description": "Complexity score from 1-100."},
        },
        "required": ["complexity_reasoning", "complexity_score"],
        "additionalProperties": False,
    }}}
    # HIGH is 24,576 in reasoning_effort's table; no maxOutputTokens, so the answer keeps 4,096.
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 24576}
    assert out["max_tokens"] == 4096 + 24576
    assert out["temperature"] == 1 and "top_p" not in out and "top_k" not in out


def test_gemini_cli_main_call_keeps_every_tool_schema() -> None:
    body = recorded("gemini-cli-main.json")
    out = gemini_request_to_messages(body, **{**TO_MESSAGES, "stream": True})
    declarations = body["tools"][0]["functionDeclarations"]
    assert [t["name"] for t in out["tools"]] == [d["name"] for d in declarations]
    assert [t["input_schema"] for t in out["tools"]] == [d["parametersJsonSchema"] for d in declarations]
    assert out["stream"] is True and out["thinking"]["budget_tokens"] == 24576


def test_gemini_cli_thinking_budget() -> None:
    out = gemini_request_to_messages(recorded("gemini-cli-budget.json"), **TO_MESSAGES)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert out["max_tokens"] == 4096 + 8192


def test_opencode_google_calls() -> None:
    """opencode's @ai-sdk/google: OpenAPI ``parameters`` in lower case, toolConfig AUTO, a model history."""
    body = recorded("opencode-google-main.json")
    out = gemini_request_to_messages(body, **TO_MESSAGES)
    declarations = body["tools"][0]["functionDeclarations"]
    assert [t["input_schema"] for t in out["tools"]] == [d["parameters"] for d in declarations]
    assert out["tool_choice"] == {"type": "auto"}
    assert out["max_tokens"] == 32000 and out["top_p"] == 0.95 and out["top_k"] == 64
    history = gemini_request_to_messages(recorded("opencode-google-history.json"), **TO_MESSAGES)
    assert [(m["role"], [b["text"] for b in m["content"]]) for m in history["messages"]] == [
        ("user", ['"say hi"']),
        ("assistant", ["Hi! (mock gateway reply)", "Hi! (mock gateway reply)"]),
    ]


def test_claude_code_request_to_gemini() -> None:
    """Today's Claude Code, as the pipeline hands it over (billing block removed): mid-conversation
    system message, adaptive thinking, effort high."""
    body = recorded("claude-code-main.json")
    out = messages_request_to_gemini(without_billing_header(body))
    system_texts = [p["text"] for p in out["systemInstruction"]["parts"]]
    assert system_texts == [b["text"] for b in body["system"][1:]]
    assert not any(t.startswith("x-anthropic-billing-header") for t in system_texts)
    assert out["contents"][0] == {"role": "user", "parts": [{"text": b["text"]} for b in body["messages"][0]["content"]]}
    assert out["contents"][1] == {"role": "user", "parts": [{"text": "<system>\n" + body["messages"][1]["content"] + "\n</system>"}]}
    assert [d["name"] for d in out["tools"][0]["functionDeclarations"]] == [t["name"] for t in body["tools"]]
    assert [d["parametersJsonSchema"] for d in out["tools"][0]["functionDeclarations"]] == [t["input_schema"] for t in body["tools"]]
    # effort high is 24,576 in reasoning_effort's table, which is also the Gemini cap.
    assert out["generationConfig"] == {"maxOutputTokens": 64000, "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 24576}}


# --- ids and carriers (expected values built here from the documented formats) -----------------


def test_call_ids_outside_anthropics_alphabet_are_hashed_stably() -> None:
    raw = "mcp.server:read-1"  # Gemini function names may hold '.' and ':'; Anthropic ids may not
    expected = "toolu_" + hashlib.sha256(raw.encode()).hexdigest()[:24]
    body = {"contents": [
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [{"functionCall": {"id": raw, "name": "mcp.server:read", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"id": raw, "name": "mcp.server:read", "response": {"output": "ok"}}}]},
    ]}
    out = gemini_request_to_messages(body, **TO_MESSAGES)
    assert out["messages"][1]["content"][0]["id"] == expected
    assert out["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": expected, "content": "ok"}]


def carrier(blocks: list[dict]) -> str:
    return base64.b64encode(b"keystile:thinking:" + json.dumps(blocks).encode()).decode()


def test_a_keystile_carrier_restores_claudes_thinking_in_place() -> None:
    first = [{"type": "thinking", "thinking": "Let me look.", "signature": "EqQBsig=="}, {"type": "redacted_thinking", "data": "EmwKAh"}]
    second = [{"type": "thinking", "thinking": "Now answer.", "signature": "ErUBsig2"}]
    body = {"contents": [
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [{"text": "Let me look.", "thought": True}, {"functionCall": {"id": "ls__toolu_1", "name": "ls", "args": {}}, "thoughtSignature": carrier(first)}]},
        {"role": "user", "parts": [{"functionResponse": {"id": "ls__toolu_1", "name": "ls", "response": {"output": "a.txt"}}}]},
        {"role": "model", "parts": [{"text": "It holds a.txt.", "thoughtSignature": carrier(second)}]},
        {"role": "user", "parts": [{"text": "thanks"}]},
    ], "generationConfig": {"thinkingConfig": {"thinkingBudget": 2048}}}
    out = gemini_request_to_messages(body, **TO_MESSAGES)
    assert out["messages"][1]["content"] == [*first, {"type": "tool_use", "id": "ls__toolu_1", "name": "ls", "input": {}}]
    assert out["messages"][3]["content"] == [*second, {"type": "text", "text": "It holds a.txt."}]
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2048}


@pytest.mark.parametrize("signature", [
    "skip_thought_signature_validator",
    base64.b64encode(b"keystile:thinking:not json").decode(),
    base64.b64encode(b"keystile:thinking:" + json.dumps([{"type": "thinking", "thinking": 1}, "x"]).encode()).decode(),
    base64.b64encode(b"keystile:thinking:").decode() + "!!!!",
])
def test_foreign_or_broken_signatures_are_ignored(signature: str) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "q"}]}, {"role": "model", "parts": [{"text": "a", "thoughtSignature": signature}]}]}
    out = gemini_request_to_messages(body, **TO_MESSAGES)
    assert out["messages"][1]["content"] == [{"type": "text", "text": "a"}]


# --- countTokens --------------------------------------------------------------------------


def test_count_tokens_bodies() -> None:
    plain = {"contents": [{"parts": [{"text": "count me"}]}]}
    wrapped = {"generateContentRequest": {"model": "models/x", **plain, "systemInstruction": {"parts": [{"text": "S"}]}}}
    kwargs = {"upstream_model": "claude-sonnet-4-5", "default_max_tokens": 4096}
    assert gemini_count_tokens_to_messages(plain, **kwargs)["messages"] == [{"role": "user", "content": [{"type": "text", "text": "count me"}]}]
    assert gemini_count_tokens_to_messages(wrapped, **kwargs)["system"] == "S"
    assert gemini_count_tokens_response(12) == {"totalTokens": 12}
    from google.genai import types

    assert types.CountTokensResponse.model_validate(gemini_count_tokens_response(12)).total_tokens == 12


def test_dropped_fields_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="keystile.translate")
    gemini_request_to_messages(
        {"contents": [{"parts": [{"text": "x"}]}], "safetySettings": [], "tools": [{"googleSearch": {}}],
         "generationConfig": {"seed": 1, "responseMimeType": "application/json"}},
        **TO_MESSAGES,
    )
    messages_request_to_gemini({"max_tokens": 1, "messages": [], "context_management": {}, "tools": [{"type": "bash_20250124", "name": "bash"}]})
    text = caplog.text
    for word in ("'safetySettings'", "googleSearch", "generationConfig.seed", "JSON mode without a schema", "'context_management'", "bash_20250124"):
        assert word in text, word
