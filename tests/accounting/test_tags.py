"""Request tags and call types: what a spend-log row says about its request (pure functions)."""

from __future__ import annotations

import pytest

from keystile.accounting.tags import MAX_TAG_CHARS, MAX_TAGS, call_type_of, request_tags
from keystile.apiformat import ApiFormat
from keystile.providers.base import Operation


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({}, {}, None),
        ({}, {"metadata": {"user_id": "u"}}, None),
        ({b"x-keystile-tags": b"a,b"}, {}, ["a", "b"]),
        ({b"x-litellm-tags": b" a , ,b "}, {}, ["a", "b"]),
        ({b"x-keystile-tags": b"a", b"x-litellm-tags": b"z"}, {}, ["a"]),  # keystile's header wins
        ({}, {"metadata": {"tags": ["x", "y", "x"]}}, ["x", "y"]),
        ({b"x-keystile-tags": b"h"}, {"metadata": {"tags": ["b", 7, None, "h"]}}, ["h", "b"]),
        ({}, {"metadata": {"tags": "not-a-list"}}, None),
        ({}, {"metadata": ["tags"]}, None),
        ({b"x-keystile-tags": b"ok\x00\x1bnul"}, {}, ["oknul"]),  # control characters never reach the store
        ({b"x-keystile-tags": "caf\u00e9".encode()}, {}, ["caf\u00e9"]),
    ],
)
def test_request_tags(headers, body, expected) -> None:
    assert request_tags(headers, body) == expected


def test_tags_are_bounded() -> None:
    many = ",".join(f"t{i}" for i in range(100)).encode()
    assert request_tags({b"x-keystile-tags": many}, {}) == [f"t{i}" for i in range(MAX_TAGS)]
    assert request_tags({}, {"metadata": {"tags": ["x" * 1000]}}) == ["x" * MAX_TAG_CHARS]


def test_call_types_are_litellms_names() -> None:
    assert call_type_of(ApiFormat.ANTHROPIC, Operation.GENERATE) == "anthropic_messages"
    assert call_type_of(ApiFormat.OPENAI, Operation.GENERATE) == "acompletion"
    assert call_type_of(ApiFormat.OPENAI, Operation.EMBEDDINGS) == "aembedding"
    assert call_type_of(ApiFormat.RESPONSES, Operation.GENERATE) == "aresponses"
