"""Issue 11.3: keystile routes, prices and limits exactly the request the upstream receives.

A body may say a key twice — literally, or once with an escape (``"mod\\u0065l"``) — and
parsers disagree about which one counts. keystile re-serialises what it parsed, so the
upstream can only ever see the values keystile acted on.
"""

from __future__ import annotations

import json
import textwrap
from typing import Iterator

import httpx
import pytest

from tests.integration.harness import GatewayProcess, standard_config

PINNED = "claude-3-5-haiku-20241022"


def _strict(raw: str) -> dict:
    """Parse with the standard library, refusing duplicate keys at any level."""

    def pairs(items: list[tuple[str, object]]) -> dict:
        names = [name for name, _ in items]
        assert len(names) == len(set(names)), f"duplicate keys reached the upstream: {names}"
        return dict(items)

    return json.loads(raw, object_pairs_hook=pairs)


@pytest.fixture(scope="module")
def gateway(upstream) -> Iterator[GatewayProcess]:  # type: ignore[no-untyped-def]
    pinned = textwrap.dedent(
        f"""\
        - name: "claude-*"
          provider: anthropic
          model: {PINNED}
          api_base: {upstream.url}
          api_key: sk-upstream-anthropic-SECRET-1111
        """
    )
    with GatewayProcess(standard_config(upstream.url, extra_models=pinned)) as gw:
        yield gw


def _spend_row(gateway: GatewayProcess, request_id: str) -> dict:
    rows = gateway.admin("GET", "/spend/logs", params={"request_id": request_id}).json()
    assert len(rows) == 1, rows
    return rows[0]


def test_an_escaped_second_model_key_cannot_reach_the_upstream(gateway, key, upstream):
    raw = (
        '{"model":"claude-x","max_tokens":32,"messages":[{"role":"user","content":"hi"}],'
        '"mod\\u0065l":"claude-opus-4-1"}'
    )
    response = httpx.post(
        f"{gateway.url}/v1/messages",
        content=raw.encode(),
        headers={"x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    sent = _strict(upstream.requests()[-1]["body"])
    assert sent["model"] == PINNED  # one model key, the one keystile routed and priced
    row = _spend_row(gateway, response.headers["x-keystile-request-id"])
    assert row["model"] == "claude-opus-4-1"  # what keystile read (the last key wins, as in every JSON parser that does not refuse)
    assert row["model_group"] == "claude-*"


def test_a_literal_duplicate_key_reaches_the_upstream_once(gateway, key, upstream):
    raw = '{"model":"claude-test","max_tokens":32,"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}'
    response = httpx.post(
        f"{gateway.url}/v1/messages",
        content=raw.encode(),
        headers={"x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert _strict(upstream.requests()[-1]["body"])["max_tokens"] == 64


@pytest.mark.parametrize(
    "options",
    ['"stream_\\u006fptions":null', '"stream_options":{"include_usage":true},"stream_\\u006fptions":null'],
)
def test_a_hidden_stream_options_null_cannot_suppress_usage(gateway, key, upstream, options):
    raw = (
        '{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"count these words please"}],'
        + options
        + "}"
    )
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        content=raw.encode(),
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    ) as response:
        assert response.status_code == 200
        body = response.read().decode()
        request_id = response.headers["x-keystile-request-id"]
    assert body.rstrip().endswith("data: [DONE]")
    sent = _strict(upstream.requests()[-1]["body"])
    assert sent["stream_options"] == {"include_usage": True}
    row = _spend_row(gateway, request_id)
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert row["spend"] > 0


def test_a_stream_whose_upstream_never_reports_usage_is_charged_an_estimate(gateway, key, upstream):
    chunks = "".join(
        "data: "
        + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                      "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        + "\n\n"
        for delta, finish in [({"role": "assistant", "content": "Hel"}, None), ({"content": "lo"}, None), ({}, "stop")]
    ) + "data: [DONE]\n\n"
    upstream.set_faults(
        [{"match": {"path": "/v1/chat/completions"}, "times": 1,
          "action": {"type": "status", "status": 200, "body": chunks, "headers": {"content-type": "text/event-stream"}}}]
    )
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        json={"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "say hello " * 40}]},
        headers={"authorization": f"Bearer {key}"},
    ) as response:
        assert response.status_code == 200
        response.read()
        request_id = response.headers["x-keystile-request-id"]
    row = _spend_row(gateway, request_id)
    assert row["status"] == 200
    # "say hello " * 40 is 400 characters: about 100 tokens at ~4 characters a token.
    assert 80 <= row["prompt_tokens"] <= 130
    assert row["completion_tokens"] >= 2  # two content chunks, at least a token each
    assert row["spend"] > 0
