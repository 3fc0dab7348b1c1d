"""What a stream cut short is charged: reported counts, filled in where the upstream had not reported yet."""

from __future__ import annotations

import pytest

from keystile.accounting.meters import is_content_chunk, usage_of_cut_stream
from keystile.accounting.usage import Usage
from keystile.apiformat import ApiFormat
from keystile.providers import mock_replies
from keystile.formats.base import ClientRequest
from keystile.providers.base import Operation
from keystile.server.relay import make_relay


@pytest.mark.parametrize(
    "chunk,carries",
    [
        (b'{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}', False),
        (b'{"choices":[{"index":0,"delta":{"content":"Hello"}}]}', True),
        (b'{"choices":[{"index":0,"delta":{"content": " there"}}]}', True),
        (b'{"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}', True),
        (b'{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"a"}}]}}]}', True),
        (b'{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":""}}]}}]}', False),
        (b'{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}', False),
        (b'{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}', False),
        (b'{"choices":[{"delta":{"content":"say \\"content\\":\\"x"}}]}', True),
    ],
)
def test_is_content_chunk(chunk, carries):
    assert is_content_chunk(chunk) is carries


def test_reported_counts_are_kept_and_output_is_at_least_the_events_relayed():
    seen = Usage(input_tokens=100, output_tokens=1, cache_read_tokens=50)
    assert usage_of_cut_stream(seen, 7, lambda: pytest.fail("input was reported")) == Usage(100, 7, 50, 0)
    assert usage_of_cut_stream(Usage(100, 20), 7, lambda: 0) == Usage(100, 20)  # a report larger than the events wins


def test_unreported_input_is_estimated():
    assert usage_of_cut_stream(Usage(), 3, lambda: 42) == Usage(input_tokens=42, output_tokens=3)
    assert usage_of_cut_stream(Usage(cache_read_tokens=9), 0, lambda: 42) == Usage(cache_read_tokens=9)


@pytest.mark.parametrize("client", [ApiFormat.ANTHROPIC, ApiFormat.OPENAI])
@pytest.mark.parametrize("wire", [ApiFormat.ANTHROPIC, ApiFormat.OPENAI])
def test_every_relay_counts_upstream_content_events(client, wire):
    body = {"model": "m", "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "count these words please"}]}
    events = mock_replies.anthropic_stream(body) if wire is ApiFormat.ANTHROPIC else mock_replies.openai_stream(
        {**body, "stream_options": {"include_usage": True}}
    )
    relay = make_relay(ClientRequest(b"", body, "m", True, b"", client, Operation.GENERATE), wire, "m")
    for event in events:
        relay.feed(event)
    relay.end()
    assert relay.content_events == len(mock_replies.split_text(mock_replies.plan_anthropic(body).text))
    assert not relay.failed
