"""Token counts an upstream reports are taken up to 10^15: more can only be its error, and every
total must stay an exact integer in JSON, Redis and a BIGINT column."""

from __future__ import annotations

from keystile.accounting.usage import usage_from_anthropic, usage_from_openai

LIMIT = 10**15  # docs/money.md, "Caps on what is stored"


def test_absurd_counts_are_taken_as_the_limit():
    usage = usage_from_anthropic(
        {"input_tokens": 2**63, "output_tokens": 2**64 - 1, "cache_read_input_tokens": LIMIT + 1, "cache_creation_input_tokens": LIMIT}
    )
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (LIMIT, LIMIT, LIMIT, LIMIT)
    assert usage.total_tokens == 4 * LIMIT < 2**53  # exact as a JSON double, far inside BIGINT


def test_openai_counts_too_and_ordinary_counts_are_untouched():
    usage = usage_from_openai({"prompt_tokens": 2**63, "completion_tokens": 1234, "prompt_tokens_details": {"cached_tokens": 2**63}})
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) == (0, 1234, LIMIT)
    assert usage_from_anthropic({"input_tokens": 999_999, "output_tokens": 1}).input_tokens == 999_999
