"""The start-up banner's config line names the first models and says how many it left out."""

from keystile.cli import _first_names


def test_names_beyond_the_first_six_are_counted_not_dropped() -> None:
    names = ("a", "b", "c", "d", "e", "f", "g", "h")
    assert _first_names(names, 6) == "a, b, c, d, e, f, and 2 more"


def test_six_or_fewer_are_all_named() -> None:
    assert _first_names(("claude-*", "gpt-4o"), 6) == "claude-*, gpt-4o"
    assert _first_names(tuple("abcdef"), 6) == "a, b, c, d, e, f"
