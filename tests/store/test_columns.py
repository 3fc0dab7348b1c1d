"""Making values fit their columns: the table the spend log relies on to never be refused."""

from __future__ import annotations

import math

import pytest

from keystile.store.columns import BIGINT_MAX, MONEY_MAX, fit_count, fit_float, fit_money, fit_text, storable


@pytest.mark.parametrize(
    "value, cap, expected",
    [
        ("claude-sonnet-4-5", 256, "claude-sonnet-4-5"),
        ("x\u0000", 256, "x"),
        ("\u0000a\u0000b\u0000", 256, "ab"),
        ("lone \ud800 surrogate \udfff", 256, "lone  surrogate "),
        ("é" * 300, 256, "é" * 256),
        ("m" * 5_000_000, 256, "m" * 256),
        ("", 256, ""),
        (None, 256, None),
    ],
)
def test_text_loses_nul_and_lone_surrogates_and_is_cut(value, cap, expected):
    assert fit_text(value, cap) == expected
    if expected is not None:
        assert storable(expected)
        expected.encode("utf-8")  # what both drivers do with it: no error


@pytest.mark.parametrize(
    "value, expected",
    [(0, 0), (5, 5), (-3, 0), (2**63 - 1, 2**63 - 1), (2**63, 2**63 - 1), (2**70, 2**63 - 1), (1.9e19, 2**63 - 1), (True, 1), ("7", 7), ("x", 0)],
)
def test_counts_are_clamped_to_bigint(value, expected):
    assert fit_count(value) == expected
    assert BIGINT_MAX == 9223372036854775807  # PostgreSQL's BIGINT maximum, SQLite's INTEGER maximum


@pytest.mark.parametrize(
    "value, expected",
    [(0.25, 0.25), (1e20, MONEY_MAX), (-1e20, -MONEY_MAX), (math.inf, MONEY_MAX), (math.nan, 0.0), (2**80, MONEY_MAX), (3, 3.0)],
)
def test_money_is_finite_and_within_its_range(value, expected):
    assert fit_money(value) == expected


@pytest.mark.parametrize("value, expected", [(1.5, 1.5), (math.inf, 1.7976931348623157e308), (-math.inf, -1.7976931348623157e308), (math.nan, 0.0)])
def test_other_doubles_are_finite(value, expected):
    assert fit_float(value) == expected
