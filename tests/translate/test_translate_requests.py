"""Request translation tables: fixtures/request_to_openai.json and request_to_anthropic.json."""

from __future__ import annotations

import pytest

from .translation_harness import case_params
from keystile.errors import ErrorKind, GatewayError
from keystile.translate.request_to_anthropic import chat_request_to_messages
from keystile.translate.request_to_openai import messages_request_to_chat


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


@pytest.mark.parametrize("case", case_params("request_to_openai.json"))
def test_messages_request_to_chat(case: dict) -> None:
    _run(messages_request_to_chat, case, {"upstream_model": "gpt-4o"})


@pytest.mark.parametrize("case", case_params("request_to_anthropic.json"))
def test_chat_request_to_messages(case: dict) -> None:
    _run(chat_request_to_messages, case, {"upstream_model": "claude-sonnet-4-5", "default_max_tokens": 4096})


def test_input_is_not_mutated() -> None:
    import copy

    from .translation_harness import load_cases

    for name, function, kwargs in (
        ("request_to_openai.json", messages_request_to_chat, {"upstream_model": "m"}),
        ("request_to_anthropic.json", chat_request_to_messages, {"upstream_model": "m", "default_max_tokens": 4096}),
    ):
        for case in load_cases(name):
            if "error" in case:
                continue
            before = copy.deepcopy(case["input"])
            function(case["input"], **kwargs)
            assert case["input"] == before, case["name"]


def test_dropped_fields_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="keystile.translate")
    messages_request_to_chat(
        {"max_tokens": 5, "top_k": 3, "service_tier": "auto", "messages": [], "tools": [{"type": "bash_20250124", "name": "bash"}]},
        upstream_model="m",
    )
    text = caplog.text
    assert "'top_k'" in text and "'service_tier'" in text and "bash_20250124" in text
    caplog.clear()
    chat_request_to_messages({"seed": 1, "messages": [{"role": "user", "content": "x"}]}, upstream_model="m", default_max_tokens=5)
    assert "'seed'" in caplog.text
