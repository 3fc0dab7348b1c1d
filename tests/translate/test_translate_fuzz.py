"""Malformed input: translators may only answer with a result or a GatewayError.

Random JSON values, and valid fixture bodies with random parts replaced or removed, are
thrown at every request translator; streams and responses get the same treatment with
upstream data. A KeyError/TypeError escaping would be a 500 in production.
"""

from __future__ import annotations

import copy
import random

import orjson
import pytest

from .translation_harness import load_cases
from keystile.errors import GatewayError
from keystile.translate.count_tokens import estimate_input_tokens
from keystile.translate.request_to_anthropic import chat_request_to_messages
from keystile.translate.request_to_openai import messages_request_to_chat
from keystile.translate.response_to_anthropic import chat_response_to_messages
from keystile.translate.response_to_openai import messages_response_to_chat
from keystile.translate.stream_to_anthropic import ChatStreamToMessages
from keystile.translate.stream_to_openai import MessagesStreamToChat

ROUNDS = 1500

WORDS = ["", "text", "image", "tool_use", "tool_result", "thinking", "user", "assistant", "system", "tool", "function",
         "auto", "any", "none", "required", "enabled", "base64", "url", "data:image/png;base64,AA", "https://x", "{", "{}",
         "type", "content", "role", "name", "id", "input", "arguments", "index", "delta", "[DONE]", "stop", "length"]


def random_value(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if depth > 4 or roll < 0.45:
        return rng.choice([None, True, False, 0, -1, 1, 2**62, 1.5, float("-0.0"), rng.choice(WORDS), "x" * rng.randint(0, 5)])
    if roll < 0.7:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(WORDS): random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def mutate(rng: random.Random, value: object) -> object:
    """Replace or delete one random node of a (deep-copied) JSON value."""
    value = copy.deepcopy(value)
    containers = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            containers.extend((node, key) for key in node)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            containers.extend((node, i) for i in range(len(node)))
            for child in node:
                walk(child)

    walk(value)
    if not containers:
        return random_value(rng)
    for _ in range(rng.randint(1, 3)):
        parent, key = rng.choice(containers)
        try:
            if isinstance(parent, dict) and rng.random() < 0.3:
                del parent[key]
            else:
                parent[key] = random_value(rng)
        except (KeyError, IndexError):
            pass
    return value


def inputs(rng: random.Random, fixture: str):
    seeds = [case["input"] for case in load_cases(fixture)]
    for _ in range(ROUNDS):
        yield random_value(rng) if rng.random() < 0.2 else mutate(rng, rng.choice(seeds))


@pytest.mark.parametrize(
    ("function", "fixture", "kwargs"),
    [
        (messages_request_to_chat, "request_to_openai.json", {"upstream_model": "m"}),
        (chat_request_to_messages, "request_to_anthropic.json", {"upstream_model": "m", "default_max_tokens": 1024}),
        (estimate_input_tokens, "request_to_openai.json", {}),
    ],
    ids=["messages_request_to_chat", "chat_request_to_messages", "estimate_input_tokens"],
)
def test_request_translators_raise_only_gateway_errors(function, fixture: str, kwargs: dict) -> None:
    rng = random.Random(1234)
    results = errors = 0
    for body in inputs(rng, fixture):
        try:
            out = function(body, **kwargs)
        except GatewayError as exc:
            assert exc.status == 400 and exc.message
            errors += 1
        else:
            orjson.dumps(out)  # the result must be sendable
            results += 1
    assert results and errors  # both paths were exercised


@pytest.mark.parametrize(
    ("function", "fixture"),
    [(chat_response_to_messages, "response_to_anthropic.json"), (messages_response_to_chat, "response_to_openai.json")],
    ids=["chat_response_to_messages", "messages_response_to_chat"],
)
def test_response_translators_raise_only_gateway_errors(function, fixture: str) -> None:
    rng = random.Random(99)
    for resp in inputs(rng, fixture):
        try:
            orjson.dumps(function(resp))
        except GatewayError:
            pass


def test_streams_never_raise() -> None:
    rng = random.Random(7)
    good_openai = [b'{"choices":[{"index":0,"delta":{"content":"a","tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{"}}]}}]}']
    good_anthropic = [(n, orjson.dumps(d)) for n, d in (
        ("message_start", {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{"}}),
    )]
    for _ in range(300):
        to_anthropic = ChatStreamToMessages()
        to_openai = MessagesStreamToChat(include_usage=rng.random() < 0.5)
        for _ in range(rng.randint(1, 12)):
            value = mutate(rng, orjson.loads(rng.choice(good_openai))) if rng.random() < 0.6 else random_value(rng)
            to_anthropic.feed(orjson.dumps(value) if rng.random() < 0.95 else b"\x00garbage")
            name, data = rng.choice(good_anthropic)
            value = mutate(rng, orjson.loads(data)) if rng.random() < 0.6 else random_value(rng)
            to_openai.feed(rng.choice([name, None, "error", "ping"]), orjson.dumps(value))
        to_anthropic.finish()
        to_openai.finish()
        assert to_anthropic.finished and to_openai.finished
