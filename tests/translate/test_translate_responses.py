"""Response translation tables, checked against the real SDK response types."""

from __future__ import annotations

import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion

from .translation_harness import case_params
from keystile.errors import ErrorKind, GatewayError
from keystile.translate.response_to_anthropic import chat_response_to_messages
from keystile.translate.response_to_openai import messages_response_to_chat


@pytest.mark.parametrize("case", case_params("response_to_anthropic.json"))
def test_chat_response_to_messages(case: dict) -> None:
    out = chat_response_to_messages(case["input"])
    assert out == case["expected"]
    Message.model_validate(out)


@pytest.mark.parametrize("case", case_params("response_to_openai.json"))
def test_messages_response_to_chat(case: dict) -> None:
    out = messages_response_to_chat(case["input"])
    assert isinstance(out.pop("created"), int)
    assert out == case["expected"]
    out["created"] = 0
    parsed = ChatCompletion.model_validate(out)
    assert parsed.choices[0].message.role == "assistant"


def test_legacy_function_call_and_missing_fields() -> None:
    out = chat_response_to_messages(
        {
            "choices": [
                {
                    "message": {"role": "assistant", "content": None, "function_call": {"name": "lookup", "arguments": '{"q":"x"}'}},
                    "finish_reason": "function_call",
                }
            ]
        }
    )
    Message.model_validate(out)
    assert out["id"].startswith("msg_") and out["model"] == ""
    assert out["stop_reason"] == "tool_use"
    [block] = out["content"]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_")
    assert block["name"] == "lookup" and block["input"] == {"q": "x"}
    assert out["usage"] == {"input_tokens": 0, "output_tokens": 0}


def test_messages_response_without_ids_gets_fresh_ones() -> None:
    out = messages_response_to_chat({"content": [{"type": "text", "text": "hi"}]})
    ChatCompletion.model_validate(out)
    assert out["id"].startswith("chatcmpl-") and out["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("bad", [None, [], "x", {}, {"choices": []}, {"choices": ["x"]}])
def test_openai_garbage_is_an_upstream_error(bad: object) -> None:
    with pytest.raises(GatewayError) as caught:
        chat_response_to_messages(bad)  # type: ignore[arg-type]
    assert caught.value.kind is ErrorKind.UPSTREAM_ERROR


@pytest.mark.parametrize("bad", [None, [], "x", {}, {"content": "text"}])
def test_anthropic_garbage_is_an_upstream_error(bad: object) -> None:
    with pytest.raises(GatewayError) as caught:
        messages_response_to_chat(bad)  # type: ignore[arg-type]
    assert caught.value.kind is ErrorKind.UPSTREAM_ERROR
