"""Issue 11.4: a stream's end is parsed, not pattern-matched.

An OpenAI upstream that stops early (a clean EOF after chunks whose ``finish_reason`` is
null, however the JSON is spaced) or sends an in-band error must reach an Anthropic client
as an in-band error — not as ``end_turn`` — and be logged with the failure's status and
charged for what was seen.
"""

from __future__ import annotations

import json

import anthropic
import pytest

from tests.integration.harness import GatewayProcess


def _chunk(delta: dict, *, spaced: bool) -> str:
    payload = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
               "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    text = json.dumps(payload) if spaced else json.dumps(payload, separators=(",", ":"))
    return f"data: {text}\n\n"


def _serve(upstream, body: str) -> None:  # type: ignore[no-untyped-def]
    upstream.set_faults(
        [{"match": {"path": "/v1/chat/completions"}, "times": 1,
          "action": {"type": "status", "status": 200, "body": body, "headers": {"content-type": "text/event-stream"}}}]
    )


def _row(gateway: GatewayProcess, request_id: str) -> dict:
    rows = gateway.admin("GET", "/spend/logs", params={"request_id": request_id}).json()
    assert len(rows) == 1, rows
    return rows[0]


def _stream(claude: anthropic.Anthropic) -> tuple[list, str]:
    events = []
    with claude.messages.with_streaming_response.create(
        model="gpt-test", max_tokens=64, stream=True, messages=[{"role": "user", "content": "hello " * 20}]
    ) as response:
        request_id = response.headers["x-keystile-request-id"]
        for line in response.iter_lines():
            if line.startswith("event: "):
                events.append(line[len("event: "):])
    return events, request_id


@pytest.mark.parametrize("spaced", [True, False], ids=["spaced", "compact"])
def test_an_early_clean_eof_is_an_in_band_error_and_charged(gateway, claude, upstream, spaced):
    _serve(upstream, _chunk({"role": "assistant", "content": "Hel"}, spaced=spaced) + _chunk({"content": "lo"}, spaced=spaced))
    events, request_id = _stream(claude)
    assert events[-1] == "error", events
    assert "message_stop" not in events
    row = _row(gateway, request_id)
    assert row["status"] == 502
    assert row["completion_tokens"] >= 2 and row["prompt_tokens"] > 0
    assert row["spend"] > 0


def test_an_in_band_upstream_error_mid_stream_is_relayed_and_logged_as_failed(gateway, claude, upstream):
    # The first chunk reaches the client on its own (0.2 s before the rest), so the
    # error can no longer be retried: it must be relayed in-band.
    upstream.set_faults(
        [{"match": {"path": "/v1/chat/completions"}, "times": 1,
          "action": {"type": "error_after_events", "events": 3, "status": 529, "seconds": 0.2}}]
    )
    events, request_id = _stream(claude)
    assert events[-1] == "error", events
    assert "message_stop" not in events
    row = _row(gateway, request_id)
    assert row["status"] == 529  # what the upstream's "overloaded" error means, not 200
    assert row["completion_tokens"] >= 1 and row["spend"] > 0


def test_the_official_sdk_raises_on_the_cut_stream(gateway, claude, upstream):
    _serve(upstream, _chunk({"role": "assistant", "content": "Hel"}, spaced=True))
    with pytest.raises(anthropic.APIStatusError):
        with claude.messages.stream(model="gpt-test", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as stream:
            for _ in stream:
                pass
