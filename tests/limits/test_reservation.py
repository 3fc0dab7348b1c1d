"""Reservations: a request's worst case, from its input estimate, its output limit and its group's dearest price."""

from __future__ import annotations

import pytest

from keystile.accounting.pricing import Price
from keystile.config.model import Deployment
from keystile.limits.reservation import MAX_RESERVED_TOKENS, Reservation, Reserver, dearest, output_limit, reservation_for
from keystile.routing.router import ModelGroup

# Claude Sonnet 4.5 on Anthropic's pricing page: $3 input, $3.75 5-minute cache write, $0.30
# cache read, $15 output, per million tokens.
SONNET = Price(input=3e-6, output=15e-6, cache_write=3.75e-6, cache_read=0.3e-6)
# GPT-4o on OpenAI's pricing page: $2.50 input, $1.25 cached input, $10 output.
GPT_4O = Price(input=2.5e-6, output=10e-6, cache_write=2.5e-6, cache_read=1.25e-6)


def chat(text: str, **extra: object) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"max_tokens": 512}, 512),  # Anthropic Messages, OpenAI Chat (legacy)
        ({"max_completion_tokens": 300}, 300),  # OpenAI Chat
        ({"max_output_tokens": 2000}, 2000),  # OpenAI Responses
        ({"generationConfig": {"maxOutputTokens": 700}}, 700),  # Gemini
        ({"generationConfig": None}, 4096),
        ({}, 4096),  # none set: the configured default
        ({"max_tokens": True}, 4096),  # a boolean is not a number
        ({"max_tokens": 0}, 4096),
        ({"max_tokens": "100"}, 4096),
        ({"max_tokens": 10**30}, MAX_RESERVED_TOKENS),
    ],
)
def test_output_limit(body, expected):
    assert output_limit(body, 4096) == expected


def test_worst_case_of_a_request_by_hand():
    # 400 characters of text: 100 tokens, plus 4 for the message's framing (count_tokens' rule)
    body = chat("x" * 400, max_tokens=1000)
    reserved = reservation_for(body, SONNET, 4096)
    assert reserved.tokens == 104 + 1000
    # input at the dearer of the input and cache-write prices: 104 × $3.75/M + 1000 × $15/M
    assert reserved.cost == pytest.approx(0.00039 + 0.015)
    assert reservation_for(body, None, 4096) == Reservation(0.0, 1104)  # an unpriced model costs nothing
    assert reservation_for(body, SONNET, 4096, generates=False).tokens == 104  # embeddings: input only


def test_bodies_without_messages_are_estimated_from_their_input():
    reserved = reservation_for({"model": "e", "input": "y" * 398}, GPT_4O, 4096, generates=False)
    assert reserved.tokens == 100  # the JSON string "yyy…" is 400 characters
    assert reserved.cost == pytest.approx(100 * 2.5e-6)


def test_dearest_takes_each_component_at_its_highest():
    assert dearest([SONNET, None, GPT_4O]) == Price(input=3e-6, output=15e-6, cache_write=3.75e-6, cache_read=1.25e-6)
    assert dearest([None]) is None


def group(name: str, *deployments: Deployment) -> ModelGroup:
    out = ModelGroup(name, "weighted")
    out.deployments.extend(deployments)
    return out


def test_reserver_prices_the_groups_dearest_deployment_and_remembers_it():
    prices = {"cheap": GPT_4O, "dear": SONNET}
    asked: list[str] = []

    def price_of(deployment: Deployment) -> Price | None:
        asked.append(deployment.model)
        return prices.get(deployment.model)

    reserver = Reserver(price_of, lambda d, requested: d, 100)
    mixed = group("mixed", Deployment("mixed", "openai", "cheap"), Deployment("mixed", "anthropic", "dear"))
    reserved = reserver(chat("x" * 8), mixed, "mixed")
    assert reserved == Reservation((6 * 3.75e-6) + 100 * 15e-6, 106)
    reserver(chat("x" * 8), mixed, "mixed")
    assert asked == ["cheap", "dear"]  # worked out once


def test_pass_through_groups_are_priced_by_the_model_asked_for():
    def concrete(deployment: Deployment, requested: str) -> Deployment:
        return deployment if deployment.model else Deployment(deployment.model_name, deployment.provider, requested)

    reserver = Reserver(lambda d: {"dear": SONNET, "cheap": GPT_4O}.get(d.model), concrete, 100)
    wildcard = group("*", Deployment("*", "openai", ""))
    assert reserver.price(wildcard, "dear") == SONNET
    assert reserver.price(wildcard, "cheap") == GPT_4O
    assert reserver.price(wildcard, "unknown") is None
