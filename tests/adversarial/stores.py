"""Helpers for the adversarial tests that involve storage: a fresh store of each kind
(``store_url``, imported by the tests that use it), a gateway on it, priced deployments.

Costs here are worked out by hand: the ``priced`` and ``liar`` deployments carry explicit
per-token prices, and the usage is what the official Anthropic SDK parsed from the answer
(or what a test told the mock upstream to report).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import httpx
import pytest

from keystile.testing.upstream import MockUpstreamThread
from tests.integration.harness import GatewayProcess, anthropic_body, standard_config
from tests.services import create_database, drop_database

T = TypeVar("T")

# USD per token, chosen so that costs are exact in binary floating point for round counts.
PRICE_IN, PRICE_OUT, PRICE_CACHE_WRITE, PRICE_CACHE_READ = 0.001, 0.002, 0.004, 0.0005
LIAR_MODEL = "claude-liar-1"
"""The upstream model id of the ``liar`` deployment: tests make the mock report absurd usage for it."""
ANTHROPIC_VERSION = {"anthropic-version": "2023-06-01"}


def priced_config(upstream_url: str, extra: str = "") -> str:
    prices = (
        f"  input_cost_per_token: {PRICE_IN}\n  output_cost_per_token: {PRICE_OUT}\n"
        f"  cache_creation_input_token_cost: {PRICE_CACHE_WRITE}\n  cache_read_input_token_cost: {PRICE_CACHE_READ}\n"
    )
    models = "".join(
        f"- name: {name}\n  provider: anthropic\n  model: {model}\n  api_base: {upstream_url}\n  api_key: x\n{prices}"
        for name, model in (("priced", "claude-sonnet-4-5-20250929"), ("liar", LIAR_MODEL))
    )
    return standard_config(upstream_url, extra_models=models, extra="spend:\n  flush_interval: 0.2\n" + extra)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'keystile.db'}"
        return
    server = request.getfixturevalue("services").postgres
    url = create_database(server, "ks_adv")
    try:
        yield url
    finally:
        drop_database(server, url)


def gateway_on(upstream: MockUpstreamThread, store_url: str, workdir: Path, extra: str = "") -> GatewayProcess:
    """A gateway (not started) on ``store_url``; start it again with the same object after a stop."""
    return GatewayProcess(priced_config(upstream.url, extra), workdir=workdir, env={"KEYSTILE_DATABASE_URL": store_url})


def usage_cost(usage: Any) -> float:
    """Hand-worked cost of an Anthropic SDK ``Usage`` at the test prices."""
    return (
        usage.input_tokens * PRICE_IN
        + usage.output_tokens * PRICE_OUT
        + (usage.cache_creation_input_tokens or 0) * PRICE_CACHE_WRITE
        + (usage.cache_read_input_tokens or 0) * PRICE_CACHE_READ
    )


def post_messages(gw: GatewayProcess, key: str, body: dict | None = None, timeout: float = 60) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/messages", json=body or anthropic_body("priced"), headers={"x-api-key": key, **ANTHROPIC_VERSION}, timeout=timeout
    )


def key_info(gw: GatewayProcess, key: str) -> dict:
    response = gw.admin("GET", "/key/info", params={"key": key})
    assert response.status_code == 200, response.text
    return response.json()["info"]


def spend_logs(gw: GatewayProcess, **params: Any) -> list[dict]:
    response = gw.admin("GET", "/spend/logs", params={"limit": 10_000, **params})
    assert response.status_code == 200, response.text
    return response.json()


def anthropic_reply(usage: dict) -> dict:
    """A complete Messages API answer, as Anthropic documents it, reporting ``usage``."""
    return {
        "id": "msg_01adversarial",
        "type": "message",
        "role": "assistant",
        "model": LIAR_MODEL,
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
