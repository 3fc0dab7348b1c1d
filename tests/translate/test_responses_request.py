"""Responses ⇄ Messages requests: hand-worked tables, recorded Codex/opencode/Claude Code bodies.

Every translated body is also checked against the official SDKs' request types (the
``anthropic`` SDK's ``MessageCreateParams``, the ``openai`` SDK's ``ResponseCreateParams``).
"""

from __future__ import annotations

import copy
import json

import pytest
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
from openai.types.responses.response_create_params import ResponseCreateParamsNonStreaming
from pydantic import TypeAdapter

from .translation_harness import FIXTURES, case_params, load_cases
from keystile.errors import ErrorKind, GatewayError
from keystile.translate.claude_code import without_billing_header
from keystile.translate.request_to_anthropic import chat_request_to_messages
from keystile.translate.request_to_openai import messages_request_to_chat
from keystile.translate.responses.request import messages_request_to_responses, responses_request_to_messages

R2M = {"upstream_model": "claude-sonnet-4-5", "default_max_tokens": 4096}
M2R = {"upstream_model": "gpt-5"}


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / "agent_traffic" / f"{name}.json").read_text())


def _consume(value: object) -> None:
    """Iterate everything: the SDK types declare lists as ``Iterable``, which pydantic checks lazily."""
    if isinstance(value, dict):
        for item in value.values():
            _consume(item)
    elif isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return
    elif hasattr(value, "__iter__"):
        for item in value:
            _consume(item)


# Module-level: the lazily checked iterables need their adapter alive while they are consumed.
MESSAGES_PARAMS = TypeAdapter(MessageCreateParamsNonStreaming)
RESPONSES_PARAMS = TypeAdapter(ResponseCreateParamsNonStreaming)


def valid_messages_request(body: dict) -> None:
    _consume(MESSAGES_PARAMS.validate_python({k: v for k, v in body.items() if k != "stream"}))


def valid_responses_request(body: dict) -> None:
    body = {k: v for k, v in body.items() if k != "stream"}
    # The SDK types require a reasoning item's id, which OpenAI itself refuses under store:
    # false ("Item with id 'rs_…' not found", maximhq/bifrost#5410); Codex sends none either.
    body["input"] = [{"id": "rs_x", **item} if item.get("type") == "reasoning" else item for item in body["input"]]
    _consume(RESPONSES_PARAMS.validate_python(body))


def _run(function, case: dict, kwargs: dict, validate) -> None:
    if "error" in case:
        with pytest.raises(GatewayError) as caught:
            function(case["input"], **kwargs)
        assert caught.value.kind is ErrorKind.INVALID_REQUEST and caught.value.status == 400
        assert caught.value.param == case["error"]["param"]
        assert case["error"]["param"] in caught.value.message
    else:
        out = function(case["input"], **kwargs)
        assert out == case["expected"]
        validate(out)


@pytest.mark.parametrize("case", case_params("responses_request_to_messages.json"))
def test_responses_request_to_messages(case: dict) -> None:
    _run(responses_request_to_messages, case, R2M, valid_messages_request)


@pytest.mark.parametrize("case", case_params("messages_request_to_responses.json"))
def test_messages_request_to_responses(case: dict) -> None:
    _run(messages_request_to_responses, case, M2R, valid_responses_request)


def test_inputs_are_not_mutated() -> None:
    for name, function, kwargs in (
        ("responses_request_to_messages.json", responses_request_to_messages, R2M),
        ("messages_request_to_responses.json", messages_request_to_responses, M2R),
    ):
        for case in load_cases(name):
            if "error" not in case:
                before = copy.deepcopy(case["input"])
                function(case["input"], **kwargs)
                assert case["input"] == before, case["name"]


# --- recorded bodies ----------------------------------------------------------------------


def _texts(content: list) -> list[str]:
    return [part["text"] for part in content]


def test_codex_tool_loop() -> None:
    body = recorded("codex-toolcall-0002")
    out = responses_request_to_messages(body, **R2M)
    valid_messages_request(out)
    # Codex sends its prompt as two developer messages and no instructions
    developer = [item for item in body["input"] if item.get("role") == "developer"]
    assert [b["text"] for b in out["system"]] == ["\n\n".join(_texts(item["content"])) for item in developer]
    assert out["stream"] is True and out["max_tokens"] == 4096 and "thinking" not in out  # reasoning: {summary: auto}, no effort
    user, assistant, results = out["messages"]
    assert user["role"] == "user" and [b["text"] for b in user["content"]][-1] == "say hi"
    assert assistant == {"role": "assistant", "content": [
        {"type": "tool_use", "id": "call_68ae7d22bdde", "name": "exec_command", "input": {"cmd": "echo hi-from-tool"}}]}
    [result] = results["content"]
    assert result["tool_use_id"] == "call_68ae7d22bdde" and result["content"].endswith("Output:\nhi-from-tool\n")
    names = [t["name"] for t in out["tools"]]
    # nine tools, one of them a namespace of five; web_search is OpenAI's to run
    namespace = next(t for t in body["tools"] if t["type"] == "namespace")
    assert [n for n in names if n.startswith("multi_agent_v1__")] == ["multi_agent_v1__" + t["name"] for t in namespace["tools"]]
    assert len(names) == 7 + 5 and "web_search" not in names
    assert out["tool_choice"] == {"type": "auto"}  # parallel_tool_calls: true


def test_codex_apply_patch_and_effort() -> None:
    body = recorded("codex-gpt55-0001")
    out = responses_request_to_messages(body, **{**R2M, "default_max_tokens": 32000})
    valid_messages_request(out)
    patch = next(t for t in out["tools"] if t["name"] == "apply_patch")
    grammar = next(t for t in body["tools"] if t.get("name") == "apply_patch")["format"]["definition"]
    assert grammar.strip() in patch["description"] and patch["input_schema"]["required"] == ["input"]
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 24576}  # reasoning.effort: high
    assert "tool_search" not in [t["name"] for t in out["tools"]]


def test_codex_builtin_provider_sends_tools_as_an_input_item() -> None:
    body = recorded("codex-builtin-openai-0002")
    out = responses_request_to_messages(body, **R2M)
    valid_messages_request(out)
    groups = body["input"][0]["tools"]
    assert [t["name"] for t in out["tools"]] == [f"{g['name']}__{t['name']}" for g in groups for t in g["tools"]]
    exec_tool = out["tools"][0]  # functions.exec is a custom tool with a Lark grammar
    assert exec_tool["name"] == "functions__exec" and "lark grammar" in exec_tool["description"]
    assert out["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2048}  # effort low
    assert len(out["system"]) == 4 and out["messages"][-1]["content"][-1]["text"] == "say hi"


@pytest.mark.parametrize("name", ["opencode-responses-0002", "oc-resp-nocompleted-0004"])
def test_opencode_bodies(name: str) -> None:
    body = recorded(name)
    out = responses_request_to_messages(body, **R2M)
    valid_messages_request(out)
    assert out["system"][0]["text"] == body["input"][0]["content"]  # a developer message with string content
    assert out["max_tokens"] == 32000
    assert [t["name"] for t in out["tools"]] == [t["name"] for t in body["tools"]]
    if name == "oc-resp-nocompleted-0004":  # two assistant items in a row become one turn
        assert [m["role"] for m in out["messages"]] == ["user", "assistant"]
        assert [b["text"] for b in out["messages"][1]["content"]] == ["Hi! (mock gateway reply)", "Hi! (mock gateway reply)"]


def test_claude_code_on_a_responses_upstream() -> None:
    body = json.loads((FIXTURES / "claude_code_request.json").read_text())  # recorded from Claude Code 2.1.197
    out = messages_request_to_responses(without_billing_header(body), **M2R)  # as the pipeline does for non-Anthropic upstreams
    valid_responses_request(out)
    texts = [b["text"] for b in body["system"]]
    assert texts[0].startswith("x-anthropic-billing-header:")
    assert out["instructions"] == "\n\n".join(texts[1:])
    assert [(i["type"], i["role"]) for i in out["input"]] == [("message", "user"), ("message", "developer")]
    assert out["input"][1]["content"] == body["messages"][1]["content"]
    assert out["reasoning"] == {"summary": "auto", "effort": "high"} and out["include"] == ["reasoning.encrypted_content"]
    assert "user" not in out  # Claude Code's user_id is longer than OpenAI allows
    assert [t["name"] for t in out["tools"]] == [t["name"] for t in body["tools"]]
    assert all(t["strict"] is False for t in out["tools"])


def test_a_conversation_survives_messages_to_responses_and_back() -> None:
    original = {
        "model": "claude", "max_tokens": 2000, "system": "Be terse.",
        "tools": [{"name": "Bash", "description": "Run", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "List files"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Sure."}, {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}]},
        ],
    }
    back = responses_request_to_messages(messages_request_to_responses(original, upstream_model="gpt-5"), upstream_model="claude", default_max_tokens=1)
    assert back["system"] == [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}]
    assert back["tools"] == original["tools"]
    back["messages"][-1]["content"][-1].pop("cache_control")
    assert back["messages"] == original["messages"]
    assert back["max_tokens"] == 2000


def test_dropped_fields_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="keystile.translate")
    responses_request_to_messages({"input": "x", "prompt_cache_key": "k", "client_metadata": {}, "tools": [{"type": "web_search"}]}, **R2M)
    assert "'prompt_cache_key'" in caplog.text and "'client_metadata'" in caplog.text and "'web_search'" in caplog.text
    caplog.clear()
    messages_request_to_responses({"max_tokens": 5, "messages": [], "stop_sequences": ["x"], "context_management": {}}, **M2R)
    assert "'stop_sequences'" in caplog.text and "'context_management'" in caplog.text


# --- through the hub: Responses client → Chat upstream, Chat client → Responses upstream ------------


CHAT_PARAMS = TypeAdapter(CompletionCreateParamsNonStreaming)


@pytest.mark.parametrize("name", ["codex-toolcall-0002", "codex-gpt55-0001", "codex-builtin-openai-0002", "opencode-responses-0002"])
def test_recorded_responses_bodies_reach_a_chat_upstream(name: str) -> None:
    body = recorded(name)
    # o3: an upstream that takes an effort (gpt-4.1 would refuse one, and gets none)
    chat = messages_request_to_chat(responses_request_to_messages(body, **{**R2M, "default_max_tokens": 32000}), upstream_model="o3")
    _consume(CHAT_PARAMS.validate_python({k: v for k, v in chat.items() if k not in ("stream", "stream_options")}))
    assert chat["messages"][0]["role"] == "system" and chat["messages"][-1]["role"] in ("user", "tool")
    assert chat.get("reasoning_effort") == (body.get("reasoning") or {}).get("effort")  # low/medium/high survive the hub


def test_chat_requests_reach_a_responses_upstream() -> None:
    translated = 0
    for case in load_cases("request_to_anthropic.json"):
        if "expected" in case:
            body = chat_request_to_messages(case["input"], upstream_model="claude", default_max_tokens=4096)
            valid_responses_request(messages_request_to_responses(body, **M2R))
            translated += 1
    assert translated > 20


def test_a_responses_upstream_that_does_not_reason_gets_no_reasoning() -> None:
    # OpenAI answers reasoning.effort on gpt-4o / gpt-4.1 with 400 "Unsupported parameter".
    body = {"model": "m", "max_tokens": 100, "thinking": {"type": "enabled", "budget_tokens": 24576},
            "messages": [{"role": "user", "content": "hi"}]}
    plain = messages_request_to_responses(body, upstream_model="gpt-4.1")
    assert "reasoning" not in plain and "include" not in plain
    assert messages_request_to_responses(body, upstream_model="gpt-5")["reasoning"]["effort"] == "high"
