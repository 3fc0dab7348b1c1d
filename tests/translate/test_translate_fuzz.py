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
from keystile.translate.gemini.request import gemini_request_to_messages, messages_request_to_gemini
from keystile.translate.gemini.response import gemini_response_to_messages, messages_response_to_gemini
from keystile.translate.gemini.stream import GeminiStreamToMessages, MessagesStreamToGemini
from keystile.translate.request_to_anthropic import chat_request_to_messages
from keystile.translate.request_to_openai import messages_request_to_chat
from keystile.translate.responses.request import messages_request_to_responses, responses_request_to_messages
from keystile.translate.responses.response import messages_response_to_responses, responses_response_to_messages
from keystile.translate.responses.stream import MessagesStreamToResponses, ResponsesStreamToMessages
from keystile.translate.response_to_anthropic import chat_response_to_messages
from keystile.translate.response_to_openai import messages_response_to_chat
from keystile.translate.stream_to_anthropic import ChatStreamToMessages
from keystile.translate.stream_to_openai import MessagesStreamToChat

ROUNDS = 1500

WORDS = ["", "text", "image", "tool_use", "tool_result", "thinking", "user", "assistant", "system", "tool", "function",
         "auto", "any", "none", "required", "enabled", "base64", "url", "data:image/png;base64,AA", "https://x", "{", "{}",
         "type", "content", "role", "name", "id", "input", "arguments", "index", "delta", "[DONE]", "stop", "length",
         # Gemini's vocabulary
         "model", "parts", "contents", "functionCall", "functionResponse", "inlineData", "fileData", "mimeType", "image/png",
         "args", "response", "output", "thought", "thoughtSignature", "OBJECT", "STRING", "ANY", "STOP", "SAFETY",
         "gemini:", "gemini-next:c2ln", "a2V5c3RpbGU6dGhpbmtpbmc6W10=", "adaptive",
         # Responses
         "message", "developer", "input_text", "output_text", "input_image", "input_file", "function_call",
         "function_call_output", "custom_tool_call", "custom", "namespace", "reasoning", "summary", "call_id",
         "encrypted_content", "keystile.thinking:S", "keystile.reasoning:E", "output_item", "output_index", "item",
         "response.completed", "response.output_item.added", "response.output_item.done", "response.failed", "high"]


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
        (gemini_request_to_messages, "gemini_request_to_messages.json", {"upstream_model": "m", "stream": True, "default_max_tokens": 1024}),
        (messages_request_to_gemini, "messages_request_to_gemini.json", {}),
        (messages_request_to_responses, "messages_request_to_responses.json", {"upstream_model": "m"}),
        (responses_request_to_messages, "responses_request_to_messages.json", {"upstream_model": "m", "default_max_tokens": 1024}),
    ],
    ids=["messages_request_to_chat", "chat_request_to_messages", "estimate_input_tokens", "gemini_request_to_messages",
         "messages_request_to_gemini", "messages_request_to_responses", "responses_request_to_messages"],
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


GEMINI_RESPONSE = {
    "candidates": [{"content": {"role": "model", "parts": [
        {"text": "t", "thought": True, "thoughtSignature": "c2ln"}, {"text": "Hi"},
        {"functionCall": {"id": "c1", "name": "ls", "args": {"d": "."}}, "thoughtSignature": "c2ln"}]},
        "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "thoughtsTokenCount": 2},
    "modelVersion": "gemini-x", "responseId": "r1",
}
ANTHROPIC_MESSAGE = {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "stop_reason": "tool_use",
    "content": [{"type": "thinking", "thinking": "t", "signature": "s"}, {"type": "redacted_thinking", "data": "d"},
                {"type": "text", "text": "Hi"}, {"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {"d": "."}}],
    "usage": {"input_tokens": 3, "output_tokens": 4},
}


@pytest.mark.parametrize(("function", "seed"), [(gemini_response_to_messages, GEMINI_RESPONSE), (messages_response_to_gemini, ANTHROPIC_MESSAGE)],
                         ids=["gemini_response_to_messages", "messages_response_to_gemini"])
def test_gemini_response_translators_raise_only_gateway_errors(function, seed: dict) -> None:
    rng = random.Random(5)
    for _ in range(ROUNDS):
        resp = random_value(rng) if rng.random() < 0.2 else mutate(rng, seed)
        try:
            orjson.dumps(function(resp, model="m"))
        except GatewayError:
            pass


def test_gemini_streams_never_raise_and_always_end() -> None:
    rng = random.Random(11)
    good_gemini = [orjson.dumps(GEMINI_RESPONSE), b'{"error":{"code":503,"message":"x","status":"UNAVAILABLE"}}',
                   b'{"promptFeedback":{"blockReason":"SAFETY"}}']
    good_anthropic = [(n, orjson.dumps(d)) for n, d in (
        ("message_start", {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 2}}),
    )]
    for _ in range(300):
        to_anthropic = GeminiStreamToMessages("m")
        to_gemini = MessagesStreamToGemini("m")
        produced = b""
        for _ in range(rng.randint(1, 12)):
            value = mutate(rng, orjson.loads(rng.choice(good_gemini))) if rng.random() < 0.6 else random_value(rng)
            to_anthropic.feed(None, orjson.dumps(value) if rng.random() < 0.95 else b"\x00garbage")
            name, data = rng.choice(good_anthropic)
            value = mutate(rng, orjson.loads(data)) if rng.random() < 0.6 else random_value(rng)
            produced += to_gemini.feed(rng.choice([name, None, "error", "ping"]), orjson.dumps(value))
        to_anthropic.finish()
        produced += to_gemini.finish()
        assert to_anthropic.finished and to_gemini.finished
        last = orjson.loads(produced.rstrip(b"\r\n").rsplit(b"\r\n\r\n", 1)[-1].removeprefix(b"data: "))
        assert "error" in last or last["candidates"][0]["finishReason"]


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


RESPONSES_REQUESTS = [case["input"] for case in load_cases("responses_request_to_messages.json") if "expected" in case]
RESPONSES_RESPONSE = {
    "id": "resp_1", "object": "response", "status": "completed", "model": "gpt-5",
    "output": [
        {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "t"}], "encrypted_content": "E"},
        {"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hi"}, {"type": "refusal", "refusal": "no"}]},
        {"id": "fc_1", "type": "function_call", "call_id": "c", "name": "f", "namespace": "n", "arguments": "{"},
        {"id": "ctc_1", "type": "custom_tool_call", "call_id": "d", "name": "g", "input": "x"},
    ],
    "incomplete_details": {"reason": "max_output_tokens"},
    "usage": {"input_tokens": 5, "input_tokens_details": {"cached_tokens": 2}, "output_tokens": 1},
}


def test_responses_response_translators_raise_only_gateway_errors() -> None:
    rng = random.Random(31)
    messages = [case["input"] for case in load_cases("response_to_openai.json")]
    for _ in range(ROUNDS):
        message = random_value(rng) if rng.random() < 0.2 else mutate(rng, rng.choice(messages))
        request = random_value(rng) if rng.random() < 0.2 else mutate(rng, rng.choice(RESPONSES_REQUESTS))
        for function, value in ((lambda m: messages_response_to_responses(m, request=request), message),
                                (responses_response_to_messages, random_value(rng) if rng.random() < 0.2 else mutate(rng, RESPONSES_RESPONSE))):
            try:
                orjson.dumps(function(value))
            except GatewayError:
                pass


def test_responses_streams_never_raise() -> None:
    rng = random.Random(17)
    good_anthropic = [
        ("message_start", {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "apply_patch", "input": {}}}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "thinking", "thinking": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "thinking_delta", "thinking": "x"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 3}}),
    ]
    item = {"id": "fc_1", "type": "function_call", "call_id": "c", "name": "f", "arguments": "{"}
    good_responses = [
        {"type": "response.created", "response": {"id": "resp_1", "model": "m"}},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.output_item.added", "output_index": 1, "item": {"type": "custom_tool_call", "call_id": "d", "name": "g", "input": "a"}},
        {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": "}"},
        {"type": "response.output_text.delta", "output_index": 2, "delta": "hi"},
        {"type": "response.reasoning_summary_text.delta", "output_index": 3, "summary_index": 1, "delta": "t"},
        {"type": "response.output_item.done", "output_index": 0, "item": {"type": "reasoning", "encrypted_content": "E", "summary": [{"text": "s"}]}},
        {"type": "response.incomplete", "response": {"incomplete_details": {"reason": "content_filter"}, "usage": {"input_tokens": 2}}},
    ]
    for _ in range(300):
        to_responses = MessagesStreamToResponses(mutate(rng, rng.choice(RESPONSES_REQUESTS)) if rng.random() < 0.8 else random_value(rng))
        to_messages = ResponsesStreamToMessages()
        for _ in range(rng.randint(1, 12)):
            name, data = rng.choice(good_anthropic)
            value = mutate(rng, data) if rng.random() < 0.6 else random_value(rng)
            to_responses.feed(rng.choice([name, None, "error", "ping"]), orjson.dumps(value))
            event = rng.choice(good_responses)
            value = mutate(rng, event) if rng.random() < 0.6 else random_value(rng)
            to_messages.feed(rng.choice([event["type"], None, "error"]), orjson.dumps(value) if rng.random() < 0.95 else b"\x00garbage")
        if rng.random() < 0.5:
            to_responses.finish()
            to_messages.finish()
        else:
            to_responses.fail(502, "cut")
            to_messages.fail(502, "cut")
        assert to_responses.finished and to_messages.finished
