"""Claude Code's per-request billing block never reaches a non-Anthropic model (it would defeat prefix caching)."""

from __future__ import annotations

import json
from pathlib import Path

from keystile.translate.claude_code import without_billing_header
from keystile.translate.request_to_openai import messages_request_to_chat

RECORDED = Path(__file__).parent / "fixtures" / "claude_code_request.json"  # recorded from Claude Code 2.1.197
BILLING = {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.123; cc_entrypoint=sdk-cli;"}
AGENT = {"type": "text", "text": "You are a Claude agent.", "cache_control": {"type": "ephemeral"}}


def test_the_billing_block_is_dropped_and_nothing_else():
    hub = {"model": "m", "system": [BILLING, AGENT], "messages": []}
    assert without_billing_header(hub) == {"model": "m", "system": [AGENT], "messages": []}
    assert hub["system"] == [BILLING, AGENT]  # the client's request is not changed in place


def test_a_request_without_one_is_returned_as_is():
    hub = {"model": "m", "system": [AGENT], "messages": []}
    assert without_billing_header(hub) is hub
    assert without_billing_header({"model": "m"}) == {"model": "m"}


def test_only_a_billing_block_leaves_no_system():
    assert "system" not in without_billing_header({"model": "m", "system": [BILLING], "messages": []})


def test_two_claude_code_requests_translate_to_the_same_prompt_prefix():
    first = {"model": "m", "max_tokens": 5, "system": [BILLING, AGENT], "messages": [{"role": "user", "content": "hi"}]}
    second = {**first, "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.999;"}, AGENT]}
    one = messages_request_to_chat(without_billing_header(first), upstream_model="gpt-4.1")
    two = messages_request_to_chat(without_billing_header(second), upstream_model="gpt-4.1")
    assert one == two
    assert one["messages"][0] == {"role": "system", "content": "You are a Claude agent."}


def test_a_recorded_claude_code_request_translates_for_an_openai_model():
    body = json.loads(RECORDED.read_text())
    chat = messages_request_to_chat(without_billing_header(body), upstream_model="gpt-4.1")
    assert not chat["messages"][0]["content"].startswith("x-anthropic-billing-header")
    roles = [m["role"] for m in chat["messages"]]
    assert roles.count("system") >= 2  # the top-level system and Claude Code's mid-conversation one
    assert "reasoning_effort" not in chat  # gpt-4.1 would refuse it
