"""Price table, model-name resolution, overrides and the cost of a usage."""

from __future__ import annotations

import datetime
import json

import pytest

from keystile.accounting.pricing import (
    SHIPPED_TABLE,
    Price,
    PriceOverride,
    cost_of,
    load_price_table,
    price_for,
)
from keystile.accounting.usage import Usage, usage_from_openai

M = 1_000_000


def usage(input_: int = 0, output: int = 0, cache_write: int = 0, cache_read: int = 0) -> Usage:
    return Usage(input_tokens=input_, output_tokens=output, cache_write_tokens=cache_write, cache_read_tokens=cache_read)


# model, usage, expected USD — figures from the table's per-million prices, worked by hand
COSTS = [
    ("claude-sonnet-4-5", usage(100_000, 20_000, 50_000, 1_000_000), 0.30 + 0.30 + 0.1875 + 0.30),
    ("claude-sonnet-4-5-20250929", usage(1_000, 500, 2_000, 10_000), 0.021),
    ("claude-opus-4-1", usage(10_000, 5_000), 0.15 + 0.375),
    ("claude-opus-4-5-20251101", usage(M), 5.00),
    ("claude-opus-4-6", usage(0, M, M, M), 25 + 6.25 + 0.50),
    ("claude-haiku-4-5", usage(200_000, 10_000), 0.20 + 0.05),
    ("claude-3-5-haiku-20241022", usage(M, M), 0.80 + 4.00),
    ("claude-3-haiku-20240307", usage(M, M, M, M), 0.25 + 1.25 + 0.30 + 0.03),
    ("claude-3-7-sonnet-20250219", usage(M, M), 3 + 15),
    ("claude-sonnet-4-20250514", usage(0, 0, M), 3.75),
    ("gpt-4o", usage(600_000, 100_000, 0, 400_000), 1.50 + 1.00 + 0.50),
    ("gpt-4o-mini-2024-07-18", usage(M, M), 0.15 + 0.60),
    ("gpt-4o-2024-05-13", usage(M), 5.00),
    ("gpt-4.1", usage(500_000, 50_000, 0, 100_000), 1.00 + 0.40 + 0.05),
    ("gpt-4.1-nano", usage(M, M, 0, M), 0.10 + 0.40 + 0.025),
    ("gpt-5", usage(M, M, 0, M), 1.25 + 10 + 0.125),
    ("gpt-5-mini", usage(2 * M, M), 0.50 + 2.00),
    ("gpt-5-nano-2025-08-07", usage(M, M, 0, M), 0.05 + 0.40 + 0.005),
    ("o3", usage(M, M), 2 + 8),
    ("o4-mini", usage(0, 0, 0, M), 0.275),
    ("o1", usage(M, M, 0, M), 15 + 60 + 7.50),
    ("text-embedding-3-small", usage(M), 0.02),
    ("text-embedding-3-large", usage(10 * M), 1.30),
    # OpenAI: a cache write costs the normal input price
    ("gpt-4.1-mini", usage(0, 0, M, 0), 0.40),
    # Google's paid tier (prompts up to 200k tokens); cached input a tenth of input
    ("gemini-2.5-pro", usage(100_000, 10_000, 0, 200_000), 0.125 + 0.10 + 0.025),
    ("gemini-2.5-flash", usage(M, M), 0.30 + 2.50),
    ("gemini-2.5-flash-lite", usage(2 * M, M), 0.20 + 0.40),
    ("vertex_ai/gemini-3.1-pro-preview", usage(M, M, 0, M), 2 + 12 + 0.20),
    ("gemini/gemini-3.5-flash", usage(M, M), 1.50 + 9.00),
    # Claude on Bedrock and Vertex AI: Anthropic's prices
    ("us.anthropic.claude-haiku-4-5-20251001-v1:0", usage(M, M), 1 + 5),
    ("claude-sonnet-4-5@20250929", usage(M, M, M, M), 3 + 15 + 3.75 + 0.30),
    ("definitely-not-a-model", usage(M, M, M, M), 0.0),
]


@pytest.mark.parametrize(("model", "used", "expected"), COSTS, ids=[c[0] for c in COSTS])
def test_cost_to_the_cent(model: str, used: Usage, expected: float) -> None:
    cost = cost_of(used, price_for(model))
    assert abs(cost - expected) < 0.005  # to the cent
    assert cost == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_cost_of_openai_usage_counts_cached_tokens_once() -> None:
    # prompt_tokens includes cached tokens; usage_from_openai moves them out of input
    used = usage_from_openai({"prompt_tokens": 1_000_000, "completion_tokens": 0,
                              "prompt_tokens_details": {"cached_tokens": 800_000}})
    assert cost_of(used, price_for("gpt-4o")) == pytest.approx(200_000 * 2.5e-6 + 800_000 * 1.25e-6)


def test_cost_of_unknown_price_is_zero() -> None:
    assert cost_of(usage(123, 456, 7, 8), None) == 0.0
    assert cost_of(Usage(), price_for("gpt-4o")) == 0.0


# name as a client or config spells it → the table entry it must resolve to
ALIASES = [
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("anthropic/claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
    ("openrouter/anthropic/claude-opus-4.1", "claude-opus-4-1"),
    ("Claude-Sonnet-4-5", "claude-sonnet-4-5"),
    ("  claude-haiku-4-5  ", "claude-haiku-4-5"),
    ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
    ("claude-opus-4-20250514", "claude-opus-4"),
    ("claude-opus-4-0", "claude-opus-4"),
    ("claude-sonnet-4-0", "claude-sonnet-4"),
    ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
    ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
    ("claude-3-opus-20240229", "claude-3-opus"),
    ("claude-opus-4-6[1m]", "claude-opus-4-6"),
    ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
    ("vertex_ai/claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
    ("anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
    ("bedrock/us.anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
    ("global.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5"),
    ("us-gov.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
    ("apac.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
    ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-opus-4-1-20250805-v1:0", "claude-opus-4-1"),
    ("claude-opus-4-1@20250805", "claude-opus-4-1"),
    ("vertex_ai/claude-haiku-4-5@20251001", "claude-haiku-4-5"),
    ("models/gemini-2.5-flash", "gemini-2.5-flash"),
    ("gemini-3.1-pro", "gemini-3.1-pro-preview"),
    ("gemini-3-flash-preview", "gemini-3-flash"),
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4o-2024-11-20", "gpt-4o"),
    ("openai/gpt-4o", "gpt-4o"),
    ("azure/gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("gpt-4.1-2025-04-14", "gpt-4.1"),
    ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
    ("gpt-5-2025-08-07", "gpt-5"),
    ("gpt-5-chat-latest", "gpt-5"),
    ("gpt-5.1-2025-11-13", "gpt-5.1"),
    ("o3-2025-04-16", "o3"),
    ("o4-mini-2025-04-16", "o4-mini"),
    ("openai/o1-2024-12-17", "o1"),
    # a dated id with a price of its own is not folded into the undated one
    ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
    ("openai/gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
    ("chatgpt-4o-latest", "chatgpt-4o-latest"),
]


@pytest.mark.parametrize(("name", "canonical"), ALIASES, ids=[a[0] for a in ALIASES])
def test_alias_resolution(name: str, canonical: str) -> None:
    table = load_price_table()
    assert canonical in table
    assert price_for(name) == table[canonical]


@pytest.mark.parametrize("name", ["", "   ", "gpt", "claude", "my-azure-deployment", "ft:gpt-4o-mini:org::abc", "anthropic/", "gpt-4o-2024"])
def test_unknown_models_have_no_price(name: str) -> None:
    assert price_for(name) is None


def test_price_for_tolerates_non_strings() -> None:
    assert price_for(None) is None  # type: ignore[arg-type]
    assert price_for(42) is None  # type: ignore[arg-type]


def test_price_for_uses_the_given_table() -> None:
    table = {"my-model": Price(1e-6, 2e-6, 1e-6, 1e-7)}
    assert price_for("my-model", table) == table["my-model"]
    assert price_for("openai/my-model-20250101", table) == table["my-model"]
    assert price_for("gpt-4o", table) is None


# override, model → expected Price (USD per token)
OVERRIDES = [
    (  # only input/output: cache prices from the table for a known model
        PriceOverride(input_cost_per_token=2e-6, output_cost_per_token=10e-6),
        "claude-sonnet-4-5",
        Price(2e-6, 10e-6, 3.75e-6, 0.30e-6),
    ),
    (  # one field only
        PriceOverride(cache_read_input_token_cost=0.1e-6),
        "claude-sonnet-4-5",
        Price(3e-6, 15e-6, 3.75e-6, 0.1e-6),
    ),
    (  # unknown model: cache write defaults to the input price, read to a tenth of it
        PriceOverride(input_cost_per_token=1e-6, output_cost_per_token=4e-6),
        "my-finetune",
        Price(1e-6, 4e-6, 1e-6, 0.1e-6),
    ),
    (  # unknown model, everything given
        PriceOverride(1e-6, 2e-6, 3e-6, 4e-6),
        "my-finetune",
        Price(1e-6, 2e-6, 3e-6, 4e-6),
    ),
    (  # unknown model, output only: input is 0
        PriceOverride(output_cost_per_token=5e-6),
        "my-finetune",
        Price(0.0, 5e-6, 0.0, 0.0),
    ),
    (  # zero is a price, not "unset": a free local model stays free
        PriceOverride(0.0, 0.0, 0.0, 0.0),
        "gpt-4o",
        Price(0.0, 0.0, 0.0, 0.0),
    ),
]


@pytest.mark.parametrize(("override", "model", "expected"), OVERRIDES)
def test_overrides(override: PriceOverride, model: str, expected: Price) -> None:
    got = price_for(model, override=override)
    assert got is not None
    for field in ("input", "output", "cache_write", "cache_read"):
        assert getattr(got, field) == pytest.approx(getattr(expected, field)), field


def test_empty_override_changes_nothing() -> None:
    assert price_for("gpt-4o", override=PriceOverride()) == price_for("gpt-4o")
    assert price_for("my-finetune", override=PriceOverride()) is None


def test_override_cost_to_the_cent() -> None:
    price = price_for("azure/my-gpt4o-deployment", override=PriceOverride(2.5e-6, 10e-6))
    assert abs(cost_of(usage(1_000_000, 100_000, 0, 1_000_000), price) - (2.5 + 1.0 + 0.25)) < 0.005


# --- the shipped table -------------------------------------------------------------------


def test_shipped_table_is_dated_and_sourced() -> None:
    doc = json.loads(SHIPPED_TABLE.read_text())
    datetime.date.fromisoformat(doc["taken"])
    assert "anthropic" in doc["sources"].lower() and "openai" in doc["sources"].lower()
    assert doc["unit"] == "USD per million tokens"


def test_shipped_table_entries_are_sane() -> None:
    doc = json.loads(SHIPPED_TABLE.read_text())
    for model, entry in doc["models"].items():
        assert model == model.lower() and model.strip() == model, model
        for field in ("input", "output", "cache_write", "cache_read"):
            assert isinstance(entry[field], (int, float)) and entry[field] >= 0, (model, field)
        assert entry["input"] > 0, model
        assert entry["cache_read"] <= entry["input"], model
        assert entry["cache_write"] >= entry["input"], model
        if model.startswith("claude"):  # 5-minute writes: 1.25x input (Claude 3 Haiku: 1.2x)
            assert entry["input"] * 1.2 <= entry["cache_write"] <= entry["input"] * 1.25 + 1e-9, model
    for alias, target in doc["aliases"].items():
        assert target in doc["models"], alias
        assert alias not in doc["models"], alias


@pytest.mark.parametrize(
    "model",
    ["claude-opus-4-1", "claude-opus-4-5", "claude-sonnet-4", "claude-sonnet-4-5", "claude-haiku-4-5",
     "claude-3-5-haiku", "claude-3-haiku", "claude-3-7-sonnet", "gpt-4o", "gpt-4o-mini", "gpt-4.1",
     "gpt-4.1-mini", "gpt-4.1-nano", "o1", "o3", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano",
     "text-embedding-3-small", "text-embedding-3-large", "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite",
     "gemini-3.1-pro-preview", "gemini-3-flash"],
)
def test_shipped_table_covers_the_common_models(model: str) -> None:
    assert price_for(model) is not None


def test_shipped_table_is_cached() -> None:
    assert load_price_table() is load_price_table()


# --- user files ------------------------------------------------------------------------


def test_user_file_in_the_same_format(tmp_path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({
        "taken": "2026-01-01",
        "models": {
            "local-llama": {"input": 0.2, "output": 0.4},
            "partner-model": {"input": 1, "output": 2, "cache_write": 1.5, "cache_read": 0.05},
        },
        "aliases": {"llama": "local-llama"},
    }))
    table = load_price_table(str(path))
    llama = table["local-llama"]
    assert (llama.input, llama.output, llama.cache_write, llama.cache_read) == pytest.approx((0.2e-6, 0.4e-6, 0.2e-6, 0.02e-6))
    assert table["llama"] is llama
    assert table["partner-model"].cache_write == pytest.approx(1.5e-6)
    assert price_for("openai/llama", table) is table["local-llama"]
    assert "gpt-4o" not in table


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "'models'"),
        ('{"models": []}', "'models'"),
        ('{"models": {"m": 3}}', "model 'm'"),
        ('{"models": {"m": {"output": 1}}}', "'input' is missing"),
        ('{"models": {"m": {"input": -1, "output": 1}}}', "'input' must be"),
        ('{"models": {"m": {"input": "1", "output": 1}}}', "'input' must be"),
        ('{"models": {"m": {"input": true, "output": 1}}}', "'input' must be"),
        ('{"models": {"m": {"input": 1, "output": 1}}, "aliases": {"a": "nope"}}', "unknown model 'nope'"),
        ('{"models": {"m": {"input": 1, "output": 1}}, "aliases": []}', "'aliases'"),
    ],
)
def test_bad_user_file_says_what_is_wrong(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_price_table(str(path))
