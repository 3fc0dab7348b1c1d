"""Reservations: what one request may cost and how many tokens it may use, held while it runs.

Budgets and tokens-per-minute are charged when a request ends, so requests running at the
same time would each see room that none of them has used yet. Admission therefore holds each
request's worst case — its input (estimated locally, about 4 characters a token) plus all the
output it may generate (``max_tokens``, or ``default_max_tokens`` when the client sets none),
priced at the dearest deployment of the model group that serves it — and the request's real
cost and tokens replace the hold when it ends. Limits are checked against what is spent plus
what is held, so requests running at once overshoot a limit by at most one request's worst case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import orjson

from keystile.accounting.pricing import Price
from keystile.errors import GatewayError
from keystile.translate.count_tokens import CHARS_PER_TOKEN, estimate_input_tokens

if TYPE_CHECKING:
    from keystile.config.model import Deployment
    from keystile.routing.router import ModelGroup

MAX_RESERVED_TOKENS = 100_000_000
"""Bound on a client-chosen ``max_tokens`` as reserved (no model answers more; keeps the sums exact)."""

_OUTPUT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
"""Anthropic and OpenAI Chat ``max_tokens``, OpenAI's newer ``max_completion_tokens``, Responses'
``max_output_tokens`` (and Gemini's ``generationConfig.maxOutputTokens``, looked up after them)."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """One request's worst case: USD against budgets, tokens against tokens-per-minute limits."""

    cost: float
    tokens: int


NOTHING = Reservation(0.0, 0)


def output_limit(body: dict, default: int) -> int:
    """The most output tokens the request asks for, or ``default`` when it sets no limit."""
    for name in _OUTPUT_FIELDS:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return min(value, MAX_RESERVED_TOKENS)
    config = body.get("generationConfig")  # Gemini
    if isinstance(config, dict):
        value = config.get("maxOutputTokens")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return min(value, MAX_RESERVED_TOKENS)
    return default


def input_estimate(body: dict) -> int:
    """Input tokens estimated from the body (``translate.count_tokens``), for any request shape."""
    try:
        return min(estimate_input_tokens(body), MAX_RESERVED_TOKENS)
    except GatewayError:  # not a messages body (embeddings, Responses): count its JSON
        try:
            size = len(orjson.dumps(body.get("input", body)))
        except TypeError:
            size = 0
        return min(max(1, (size + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN), MAX_RESERVED_TOKENS)


def reservation_for(body: dict, price: Price | None, default_max_tokens: int, *, generates: bool = True) -> Reservation:
    """The worst case of the request ``body`` at ``price`` (None: unpriced, it costs nothing)."""
    input_tokens = input_estimate(body)
    output_tokens = output_limit(body, default_max_tokens) if generates else 0
    cost = 0.0
    if price is not None:
        cost = input_tokens * max(price.input, price.cache_write) + output_tokens * price.output
    return Reservation(cost, input_tokens + output_tokens)


def dearest(prices: list[Price | None]) -> Price | None:
    """Each price component at its highest among ``prices`` (unknown prices cost 0)."""
    known = [p for p in prices if p is not None]
    if not known:
        return None
    return Price(
        input=max(p.input for p in known),
        output=max(p.output for p in known),
        cache_write=max(p.cache_write for p in known),
        cache_read=max(p.cache_read for p in known),
    )


class Reserver:
    """Builds each request's ``Reservation`` from its body and the model group that serves it.

    The group's price is worked out once (per requested name, for pass-through deployments,
    which are priced by the model the client names) and remembered.
    """

    def __init__(
        self,
        price_of: Callable[["Deployment"], Price | None],
        concrete: Callable[["Deployment", str], "Deployment"],
        default_max_tokens: int,
    ) -> None:
        self.price_of = price_of
        """The price the spend of a deployment is charged at (``Accountant.price``)."""
        self.concrete = concrete
        """The deployment as it serves a requested name (``Router.concrete``)."""
        self.default_max_tokens = default_max_tokens
        self._prices: dict[tuple[str, str], Price | None] = {}

    def forget_prices(self) -> None:
        """A model group's deployments changed (models added or removed at run time)."""
        self._prices.clear()

    def price(self, group: "ModelGroup", requested: str) -> Price | None:
        passthrough = any(not d.model for d in group.deployments)
        key = (group.name, requested if passthrough else "")
        try:
            return self._prices[key]
        except KeyError:
            pass
        if len(self._prices) > 10_000:  # requested names are the client's: keep the memo bounded
            self._prices.clear()
        price = self._prices[key] = dearest([self.price_of(self.concrete(d, requested)) for d in group.deployments])
        return price

    def __call__(self, body: dict, group: "ModelGroup", requested: str, *, generates: bool = True) -> Reservation:
        return reservation_for(body, self.price(group, requested), self.default_max_tokens, generates=generates)
