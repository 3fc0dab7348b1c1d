"""estimate_input_tokens: a documented heuristic; the tests pin its arithmetic and its sense."""

from __future__ import annotations

import pytest

from keystile.errors import GatewayError
from keystile.translate.count_tokens import IMAGE_TOKENS, MESSAGE_OVERHEAD, PDF_TOKENS_PER_PAGE, TOOL_OVERHEAD, estimate_input_tokens


def test_text_is_about_four_characters_per_token() -> None:
    body = {"system": "x" * 400, "messages": [{"role": "user", "content": "y" * 400}]}
    assert estimate_input_tokens(body) == 200 + MESSAGE_OVERHEAD


def test_blocks_tools_and_images_count() -> None:
    body = {
        "system": [{"type": "text", "text": "s" * 40}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "t" * 40}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "h" * 40, "signature": "sig"}, {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "r" * 40}]}]},
        ],
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
    }
    estimate = estimate_input_tokens(body)
    chars = 40 * 4 + len("f") + len('{"a":1}') + len('{"name":"f","description":"d","input_schema":{"type":"object"}}')
    assert estimate == IMAGE_TOKENS + 3 * MESSAGE_OVERHEAD + TOOL_OVERHEAD + -(-chars // 4)


def test_pdf_pages_are_estimated_from_size() -> None:
    one_page = {"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "A" * 1000}}]}]}
    big = {"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "A" * 400_000}}]}]}
    assert estimate_input_tokens(one_page) == PDF_TOKENS_PER_PAGE + MESSAGE_OVERHEAD
    assert estimate_input_tokens(big) == 6 * PDF_TOKENS_PER_PAGE + MESSAGE_OVERHEAD


def test_more_text_means_more_tokens_and_never_zero() -> None:
    small = estimate_input_tokens({"messages": [{"role": "user", "content": "hello"}]})
    large = estimate_input_tokens({"messages": [{"role": "user", "content": "hello " * 1000}]})
    assert 1 <= small < large
    assert estimate_input_tokens({"messages": []}) == 1


def test_odd_shapes_inside_are_tolerated() -> None:
    nested: object = "deep"
    for _ in range(200):
        nested = [{"type": "tool_result", "content": nested}]
    body = {"system": 5, "messages": [None, "str", {"content": {"type": "weird", "x": [1, 2]}}, {"content": nested}], "tools": "nope"}
    assert estimate_input_tokens(body) > 1


@pytest.mark.parametrize("body", [None, [], {"messages": "x"}, {}])
def test_wrong_top_level_types_are_a_400(body: object) -> None:
    with pytest.raises(GatewayError):
        estimate_input_tokens(body)  # type: ignore[arg-type]
