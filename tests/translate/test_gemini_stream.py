"""Streams: Anthropic SSE → Gemini ``alt=sse`` (read by google-genai over HTTP) and Gemini ``alt=sse`` →
Anthropic SSE (accumulated by the Anthropic SDK)."""

from __future__ import annotations

import base64
import json

import orjson
import pytest

from .gemini_harness import RECORDED, GeminiSDKServer, gemini_chunks
from .translation_harness import anthropic_events, anthropic_final_message
from keystile.translate.gemini.request import messages_request_to_gemini
from keystile.translate.gemini.stream import GeminiStreamToMessages, MessagesStreamToGemini

# --- Anthropic events (as Claude sends them) -----------------------------------------------


def message_start(input_tokens: int = 25, **usage) -> tuple[str, dict]:
    return "message_start", {"type": "message_start", "message": {
        "id": "msg_01XYZ", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1, **usage}}}


def start(index: int, block: dict) -> tuple[str, dict]:
    return "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, d: dict) -> tuple[str, dict]:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}


def stop(index: int) -> tuple[str, dict]:
    return "content_block_stop", {"type": "content_block_stop", "index": index}


def message_delta(stop_reason: str, output_tokens: int) -> tuple[str, dict]:
    return "message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": {"output_tokens": output_tokens}}


PING = ("ping", {"type": "ping"})
MESSAGE_STOP = ("message_stop", {"type": "message_stop"})
THINKING = [
    start(0, {"type": "thinking", "thinking": "", "signature": ""}),
    delta(0, {"type": "thinking_delta", "thinking": "Let me "}),
    delta(0, {"type": "thinking_delta", "thinking": "look."}),
    delta(0, {"type": "signature_delta", "signature": "EqQBCgIYAhIMsig"}),
    stop(0),
]
THINKING_BLOCK = {"type": "thinking", "thinking": "Let me look.", "signature": "EqQBCgIYAhIMsig"}


def to_gemini(events: list[tuple[str, dict]], *, finish: bool = False) -> tuple[MessagesStreamToGemini, bytes]:
    translator = MessagesStreamToGemini("gemini-2.5-pro")
    out = b"".join(translator.feed(name, orjson.dumps(data)) for name, data in events)
    if finish:
        out += translator.finish()
    return translator, out


def sdk_stream(raw: bytes) -> list:
    """The chunks google-genai yields for these bytes, read over HTTP as from Google."""
    with GeminiSDKServer() as server:
        server.queue(raw, content_type="text/event-stream")
        client = server.client()
        return list(client.models.generate_content_stream(model="gemini-2.5-pro", contents="hi"))


def decode_carrier(signature: bytes | str) -> list[dict]:
    raw = signature if isinstance(signature, bytes) else base64.b64decode(signature)
    assert raw.startswith(b"keystile:thinking:")
    return json.loads(raw[len(b"keystile:thinking:"):])


def test_text_stream_through_the_sdk() -> None:
    events = [message_start(25, cache_read_input_tokens=10), PING, start(0, {"type": "text", "text": ""}),
              delta(0, {"type": "text_delta", "text": "Hello"}), delta(0, {"type": "text_delta", "text": " world"}),
              stop(0), message_delta("end_turn", 12), MESSAGE_STOP]
    translator, raw = to_gemini(events)
    chunks = gemini_chunks(raw)
    assert len(chunks) == 3 and all(c["responseId"] == "msg_01XYZ" and c["modelVersion"] == "gemini-2.5-pro" for c in chunks)
    sdk = sdk_stream(raw)
    assert "".join(c.text or "" for c in sdk) == "Hello world"
    last = sdk[-1]
    assert last.candidates[0].finish_reason.value == "STOP"
    assert (last.usage_metadata.prompt_token_count, last.usage_metadata.cached_content_token_count, last.usage_metadata.candidates_token_count) == (35, 10, 12)
    assert translator.finished and (translator.usage.input_tokens, translator.usage.output_tokens) == (25, 12)


def test_thinking_text_and_tool_call_through_the_sdk() -> None:
    events = [message_start(), *THINKING,
              start(1, {"type": "text", "text": ""}), delta(1, {"type": "text_delta", "text": "Listing."}), stop(1),
              start(2, {"type": "tool_use", "id": "toolu_01A", "name": "list_directory", "input": {}}),
              delta(2, {"type": "input_json_delta", "partial_json": '{"dir_'}), delta(2, {"type": "input_json_delta", "partial_json": 'path": "."}'}),
              stop(2), message_delta("tool_use", 30), MESSAGE_STOP]
    _, raw = to_gemini(events)
    sdk = sdk_stream(raw)
    parts = [part for chunk in sdk for part in chunk.candidates[0].content.parts]
    assert [(p.text, p.thought) for p in parts[:2]] == [("Let me ", True), ("look.", True)]
    assert parts[2].text == "Listing." and decode_carrier(parts[2].thought_signature) == [THINKING_BLOCK]
    call = parts[3].function_call
    assert (call.id, call.name, call.args) == ("toolu_01A", "list_directory", {"dir_path": "."})
    assert parts[3].thought_signature is None
    assert sdk[-1].candidates[0].finish_reason.value == "STOP"


def test_a_stream_ending_in_thinking_carries_it_in_the_final_chunk() -> None:
    _, raw = to_gemini([message_start(), *THINKING, message_delta("max_tokens", 50), MESSAGE_STOP])
    final = gemini_chunks(raw)[-1]["candidates"][0]
    assert final["finishReason"] == "MAX_TOKENS"
    assert final["content"]["parts"][0]["text"] == "" and decode_carrier(final["content"]["parts"][0]["thoughtSignature"]) == [THINKING_BLOCK]


@pytest.mark.parametrize(("stop_reason", "finish"), [("refusal", "SAFETY"), ("max_tokens", "MAX_TOKENS"), ("stop_sequence", "STOP")])
def test_finish_reasons(stop_reason: str, finish: str) -> None:
    _, raw = to_gemini([message_start(), start(0, {"type": "text", "text": ""}), delta(0, {"type": "text_delta", "text": "x"}),
                        stop(0), message_delta(stop_reason, 2), MESSAGE_STOP])
    assert gemini_chunks(raw)[-1]["candidates"][0]["finishReason"] == finish


def test_upstream_without_message_stop_still_ends_with_a_finish_reason() -> None:
    translator, raw = to_gemini([message_start(), start(0, {"type": "text", "text": ""}), delta(0, {"type": "text_delta", "text": "Hi"})], finish=True)
    chunks = gemini_chunks(raw)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert translator.finished and translator.finish() == b"" and translator.feed("message_stop", b'{"type":"message_stop"}') == b""


def test_an_upstream_error_event_reaches_the_sdk_as_an_error() -> None:
    from google.genai import errors

    events = [message_start(), start(0, {"type": "text", "text": ""}), delta(0, {"type": "text_delta", "text": "Par"}),
              ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})]
    translator, raw = to_gemini(events)
    chunks = gemini_chunks(raw)
    assert chunks[-1] == {"error": {"code": 503, "message": "Overloaded", "status": "UNAVAILABLE"}}
    assert translator.finished and translator.finish() == b""
    seen = []
    with GeminiSDKServer() as server:
        server.queue(raw, content_type="text/event-stream")
        client = server.client()
        with pytest.raises(errors.ServerError) as caught:
            for chunk in client.models.generate_content_stream(model="m", contents="hi"):
                seen.append(chunk.text)
    assert seen == ["Par"] and caught.value.code == 503 and caught.value.message == "Overloaded"


def test_fail_sends_googles_error_chunk() -> None:
    translator, raw = to_gemini([message_start(), start(0, {"type": "text", "text": ""})])
    raw += translator.fail(502, "The upstream stream ended before it was complete.")
    assert gemini_chunks(raw)[-1] == {"error": {"code": 502, "message": "The upstream stream ended before it was complete.", "status": "UNAVAILABLE"}}
    assert translator.fail(502, "again") == b"" and translator.finish() == b""


def test_every_stream_ends_with_a_finish_reason_or_an_error() -> None:
    endings = [[MESSAGE_STOP], [], [("error", {"type": "error", "error": {"type": "api_error", "message": "x"}})]]
    for ending in endings:
        translator, raw = to_gemini([message_start(), *THINKING, *ending], finish=True)
        last = gemini_chunks(raw)[-1]
        assert "error" in last or last["candidates"][0].get("finishReason")


# --- Gemini chunks (as Google sends them) ----------------------------------------------------


def to_messages(chunks: list[dict | bytes], *, finish: bool = False, model: str = "gemini-2.5-flash") -> tuple[GeminiStreamToMessages, bytes]:
    translator = GeminiStreamToMessages(model)
    out = b"".join(translator.feed(None, c if isinstance(c, bytes) else orjson.dumps(c)) for c in chunks)
    if finish:
        out += translator.finish()
    return translator, out


def chunk(parts: list[dict], finish: str | None = None, **usage) -> dict:
    candidate: dict = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": {"promptTokenCount": 100, **usage}, "modelVersion": "gemini-3-pro-preview", "responseId": "resp1"}


def test_recorded_gemini_stream() -> None:
    from keystile.sse import SSEParser

    parser = SSEParser()
    translator = GeminiStreamToMessages("gemini-2.5-flash")
    raw = b"".join(translator.feed(e.event, e.data) for e in parser.feed(RECORDED))
    events = anthropic_events(raw)
    message = anthropic_final_message(events)
    assert message.content[0].text.endswith("**Italian:** Ciao") and message.content[0].text.startswith("Here you go!")
    assert len(message.content) == 1 and message.stop_reason == "end_turn"
    assert message.id == "msg_AdVRaMmDCYekqtsPrb_-iAw" and message.model == "gemini-2.5-flash"
    start_usage = events[0][1]["message"]["usage"]
    assert start_usage == {"input_tokens": 5, "output_tokens": 0}
    # 44 answer tokens + 186 thinking tokens.
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 230)
    assert translator.finished and not translator.failed


def test_thoughts_signatures_and_calls() -> None:
    chunks = [
        chunk([{"text": "**Plan**\n", "thought": True}]),
        chunk([{"text": "Look first.", "thought": True}]),
        chunk([{"functionCall": {"name": "ls", "args": {"d": "."}}, "thoughtSignature": "Q2lZQmp6"}]),
        chunk([{"functionCall": {"name": "cat", "args": {}}}], "STOP", candidatesTokenCount=20, thoughtsTokenCount=50),
    ]
    translator, raw = to_messages(chunks)
    message = anthropic_final_message(anthropic_events(raw))
    content = message.model_dump(mode="json", exclude_none=True)["content"]
    assert content[0] == {"type": "thinking", "thinking": "**Plan**\nLook first.", "signature": ""}
    assert content[1] == {"type": "thinking", "thinking": "", "signature": "gemini-next:Q2lZQmp6"}
    assert [(b["name"], b["input"]) for b in content[2:]] == [("ls", {"d": "."}), ("cat", {})]
    assert message.stop_reason == "tool_use" and message.usage.output_tokens == 70
    # The client sends the turn back: the upstream gets its parts as it sent them.
    history = {"max_tokens": 10, "messages": [{"role": "user", "content": "go"}, {"role": "assistant", "content": content}]}
    assert messages_request_to_gemini(history)["contents"][1]["parts"] == [
        {"text": "**Plan**\nLook first.", "thought": True},
        {"functionCall": {"name": "ls", "args": {"d": "."}}, "thoughtSignature": "Q2lZQmp6"},
        {"functionCall": {"name": "cat", "args": {}}},
    ]


def test_a_signed_thought_and_a_final_signature() -> None:
    chunks = [
        chunk([{"text": "Thinking", "thought": True, "thoughtSignature": "dDE="}]),
        chunk([{"text": "Ans"}]),
        chunk([{"text": "wer"}]),
        chunk([{"text": "", "thoughtSignature": "ZW5k"}], "STOP"),
    ]
    _, raw = to_messages(chunks)
    content = anthropic_final_message(anthropic_events(raw)).model_dump(mode="json", exclude_none=True)["content"]
    assert content == [
        {"type": "thinking", "thinking": "Thinking", "signature": "gemini:dDE="},
        {"type": "text", "text": "Answer"},
        {"type": "thinking", "thinking": "", "signature": "gemini-next:ZW5k"},
    ]


@pytest.mark.parametrize(("finish", "stop_reason", "failed"), [
    ("MAX_TOKENS", "max_tokens", False), ("SAFETY", "refusal", True), ("PROHIBITED_CONTENT", "refusal", True), ("OTHER", "end_turn", False),
])
def test_finish_reasons_become_stop_reasons(finish: str, stop_reason: str, failed: bool) -> None:
    translator, raw = to_messages([chunk([{"text": "partial"}]), chunk([], finish)])
    message = anthropic_final_message(anthropic_events(raw))
    assert message.stop_reason == stop_reason and translator.failed is failed and translator.finished


def test_a_malformed_function_call_is_an_error_event() -> None:
    bad = chunk([], "MALFORMED_FUNCTION_CALL")
    bad["candidates"][0]["finishMessage"] = "Malformed function call: default_api.ls(d=."
    translator, raw = to_messages([chunk([{"text": "Let me"}]), bad])
    events = anthropic_events(raw)
    assert events[-1][0] == "error" and "MALFORMED_FUNCTION_CALL" in events[-1][1]["error"]["message"]
    assert events[-2] == ("content_block_stop", {"type": "content_block_stop", "index": 0})
    assert translator.failed and translator.finished


def test_an_error_chunk_mid_stream() -> None:
    error = b'data: {"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}'
    translator, raw = to_messages([chunk([{"text": "Hi"}]), error[len(b"data: "):]])
    name, data = anthropic_events(raw)[-1]
    assert name == "error" and data["error"] == {"type": "api_error", "message": "The model is overloaded. Please try again later."}
    assert translator.failed and translator.finished and translator.finish() == b""


def test_a_blocked_prompt_is_a_refusal() -> None:
    translator, raw = to_messages([{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}])
    message = anthropic_final_message(anthropic_events(raw))
    assert message.stop_reason == "refusal" and message.content == [] and translator.failed


def test_finish_without_a_finish_reason_and_fail() -> None:
    translator, raw = to_messages([chunk([{"text": "Hi"}])], finish=True)
    assert anthropic_final_message(anthropic_events(raw)).stop_reason == "end_turn"
    translator = GeminiStreamToMessages("m")
    events = anthropic_events(translator.fail(504, "upstream timed out"))
    assert events == [("error", {"type": "error", "error": {"type": "timeout_error", "message": "upstream timed out"}})]
    assert translator.failed and translator.feed(None, orjson.dumps(chunk([{"text": "late"}]))) == b""
