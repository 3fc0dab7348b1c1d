"""Shared helpers for the translation tests: fixture loading, SSE decoding, SDK validation."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from keystile.sse import SSEParser

FIXTURES = Path(__file__).parent / "fixtures"


def load_cases(name: str) -> list[dict]:
    return json.loads((FIXTURES / name).read_text())


def case_params(name: str) -> list:
    return [pytest.param(case, id=case["name"]) for case in load_cases(name)]


def anthropic_events(raw: bytes) -> list[tuple[str | None, dict]]:
    """Anthropic SSE bytes → [(event name, data)], checking name and data ``type`` agree."""
    parser = SSEParser()
    events = []
    for event in parser.feed(raw) + parser.close():
        data = orjson.loads(event.data)
        assert event.event == data["type"], (event.event, data)
        events.append((event.event, data))
    return events


def openai_lines(raw: bytes) -> list[dict | str]:
    """OpenAI SSE bytes → the decoded ``data:`` payloads, with ``"[DONE]"`` kept as a string."""
    parser = SSEParser()
    out: list[dict | str] = []
    for event in parser.feed(raw) + parser.close():
        assert event.event is None
        out.append("[DONE]" if event.data == b"[DONE]" else orjson.loads(event.data))
    return out


def sse_chunks(*chunks: dict | str) -> list[bytes]:
    """Upstream OpenAI SSE data payloads as the hot path would hand them to ``feed``."""
    return [c.encode() if isinstance(c, str) else orjson.dumps(c) for c in chunks]


def anthropic_final_message(events: list[tuple[str | None, dict]]):
    """Rebuild the final message the way the Anthropic SDK does, and validate every event."""
    from anthropic.lib.streaming._messages import accumulate_event
    from anthropic.types import Message, RawMessageStreamEvent
    from pydantic import TypeAdapter

    adapter = TypeAdapter(RawMessageStreamEvent)
    snapshot = None
    json_bufs: dict = {}
    for name, data in events:
        if name in ("ping", "error"):
            continue
        event = adapter.validate_python(data)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    return Message.model_validate(snapshot.to_dict())


def openai_final_completion(lines: list[dict | str]):
    """Validate each chunk with the OpenAI SDK types, accumulate them like the SDK does, validate the result."""
    from openai.lib.streaming.chat._completions import ChatCompletionStreamState
    from openai.types.chat import ChatCompletionChunk

    from openai.types.chat import ChatCompletion

    state = ChatCompletionStreamState()
    for line in lines:
        if line == "[DONE]":
            continue
        chunk = ChatCompletionChunk.model_validate(line)
        state.handle_chunk(chunk)
    # The snapshot, not get_final_completion(): that one raises on length/content_filter.
    return ChatCompletion.model_validate(state.current_completion_snapshot.model_dump())
