"""What tokens cost: the price table, model-name resolution, per-deployment overrides, cost of a usage.

Prices come from ``prices.json`` beside this module (USD per million tokens, dated, with its
sources) or from a user file in the same format; in memory they are USD per token.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

import orjson

from keystile.accounting.usage import Usage

SHIPPED_TABLE = Path(__file__).with_name("prices.json")

# Defaults for cache prices a user file or an override leaves out, relative to the input price:
# writes cost the input price (OpenAI's rule; Anthropic charges 1.25x), reads a tenth of it
# (the usual discount of both providers). A table entry always wins over these.
DEFAULT_CACHE_WRITE_FACTOR = 1.0
DEFAULT_CACHE_READ_FACTOR = 0.1

_PER_MILLION = 1_000_000.0


@dataclass(frozen=True, slots=True)
class Price:
    """USD per token (not per million)."""

    input: float
    output: float
    cache_write: float
    cache_read: float


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """Per-deployment prices in USD per token, named as in LiteLLM's ``litellm_params``.

    A field left None comes from the table. For a model the table does not know, a missing
    input or output price is 0, a missing cache-write price is the input price and a missing
    cache-read price a tenth of it.
    """

    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    cache_creation_input_token_cost: float | None = None
    cache_read_input_token_cost: float | None = None

    @property
    def is_empty(self) -> bool:
        return (
            self.input_cost_per_token is None
            and self.output_cost_per_token is None
            and self.cache_creation_input_token_cost is None
            and self.cache_read_input_token_cost is None
        )


def load_price_table(path: str | None = None) -> dict[str, Price]:
    """The shipped table (read once, then cached), or the file at ``path``, read each call.

    Both map every model id and every alias to its ``Price``; the shipped one is shared, so
    callers must not modify it. A malformed file raises ``ValueError`` naming the entry at
    fault. In a user file the cache prices may be left out (see the defaults above).
    """
    if path is None:
        return _shipped_table()
    return _parse_table(Path(path).read_bytes(), str(path))


@functools.cache
def _shipped_table() -> dict[str, Price]:
    return _parse_table(SHIPPED_TABLE.read_bytes(), str(SHIPPED_TABLE))


def _parse_table(raw: bytes, origin: str) -> dict[str, Price]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{origin}: not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict):
        raise ValueError(f"{origin}: expected an object with a 'models' object")
    table: dict[str, Price] = {}
    for model, entry in doc["models"].items():
        table[model] = _price_from_entry(entry, f"{origin}: model {model!r}")
    aliases = doc.get("aliases")
    if aliases is None:
        aliases = {}
    if not isinstance(aliases, dict):
        raise ValueError(f"{origin}: 'aliases' must be an object")
    for alias, target in aliases.items():
        if target not in table:
            raise ValueError(f"{origin}: alias {alias!r} points to unknown model {target!r}")
        table.setdefault(alias, table[target])
    return table


def _price_from_entry(entry: object, where: str) -> Price:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object")

    def per_million(name: str, default: float | None = None) -> float:
        value = entry.get(name)
        if value is None and default is not None:
            return default
        if value is None:
            raise ValueError(f"{where}: '{name}' is missing")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{where}: '{name}' must be a number >= 0, not {value!r}")
        return float(value)

    input_ = per_million("input")
    output = per_million("output")
    cache_write = per_million("cache_write", input_ * DEFAULT_CACHE_WRITE_FACTOR)
    cache_read = per_million("cache_read", input_ * DEFAULT_CACHE_READ_FACTOR)
    return Price(
        input=input_ / _PER_MILLION,
        output=output / _PER_MILLION,
        cache_write=cache_write / _PER_MILLION,
        cache_read=cache_read / _PER_MILLION,
    )


def price_for(
    model: str,
    table: dict[str, Price] | None = None,
    *,
    override: PriceOverride | None = None,
) -> Price | None:
    """The price of ``model``: exact id first, then normalised names; None when unknown.

    Normalising lower-cases, drops a ``provider/`` prefix (``anthropic/``, ``openai/``,
    ``azure/``, …), Bedrock's ``[region.]anthropic.`` prefix and ``-v1:0`` suffix, Vertex's
    ``@date``, a ``[1m]``-style suffix, turns dots into dashes in Claude names
    (``claude-sonnet-4.5``), then drops ``-latest`` and a ``-YYYYMMDD`` / ``-YYYY-MM-DD`` date.
    """
    if table is None:
        table = _shipped_table()
    base = None
    if isinstance(model, str):
        for candidate in _candidates(model):
            base = table.get(candidate)
            if base is not None:
                break
    if override is None or override.is_empty:
        return base
    return _apply_override(base, override)


def _apply_override(base: Price | None, override: PriceOverride) -> Price:
    def pick(value: float | None, fallback: float) -> float:
        return fallback if value is None else value

    if base is not None:
        return Price(
            input=pick(override.input_cost_per_token, base.input),
            output=pick(override.output_cost_per_token, base.output),
            cache_write=pick(override.cache_creation_input_token_cost, base.cache_write),
            cache_read=pick(override.cache_read_input_token_cost, base.cache_read),
        )
    input_ = pick(override.input_cost_per_token, 0.0)
    return Price(
        input=input_,
        output=pick(override.output_cost_per_token, 0.0),
        cache_write=pick(override.cache_creation_input_token_cost, input_ * DEFAULT_CACHE_WRITE_FACTOR),
        cache_read=pick(override.cache_read_input_token_cost, input_ * DEFAULT_CACHE_READ_FACTOR),
    )


def canonical_model_name(model: str) -> str:
    """``model`` normalised as ``price_for`` normalises it (the same model under any spelling):
    ``anthropic/Claude-Sonnet-4.5-20250929`` → ``claude-sonnet-4-5``."""
    return _candidates(model)[-1] if model else model


_BEDROCK_PREFIX = re.compile(r"^(?:[a-z][a-z-]{1,7}\.)?anthropic\.")  # us., eu., apac., global., us-gov.
_BEDROCK_VERSION = re.compile(r"-v\d+(?::\d+)?$")
_VERTEX_VERSION = re.compile(r"@[\w.-]*$")
_BRACKET_SUFFIX = re.compile(r"\[[^\]]*\]$")
_DATE_SUFFIX = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")


@functools.lru_cache(maxsize=1024)
def _candidates(model: str) -> tuple[str, ...]:
    """Names to look up, most specific first; pure, so cached per model string."""
    seen: list[str] = []

    def add(name: str) -> None:
        if name and name not in seen:
            seen.append(name)

    add(model)
    name = model.strip().lower()
    add(name)
    name = name.rsplit("/", 1)[-1]
    add(name)
    name = _BRACKET_SUFFIX.sub("", name)
    name = _VERTEX_VERSION.sub("", name)
    name = _BEDROCK_PREFIX.sub("", name)
    add(name)
    if name.startswith("claude"):
        # Bedrock's "-v1:0", Vertex's "-v2", OpenRouter's "claude-sonnet-4.5"
        name = _BEDROCK_VERSION.sub("", name).replace(".", "-")
        add(name)
    if name.endswith("-latest"):
        name = name[: -len("-latest")]
        add(name)
    name = _DATE_SUFFIX.sub("", name)
    add(name)
    return tuple(seen)


def cost_of(usage: Usage, price: Price | None) -> float:
    """USD for ``usage`` at ``price``; 0.0 for an unknown price.

    ``usage.input_tokens`` excludes cache reads and writes, so the four counts are disjoint.
    """
    if price is None:
        return 0.0
    return (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_write_tokens * price.cache_write
        + usage.cache_read_tokens * price.cache_read
    )
