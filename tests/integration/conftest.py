"""Shared fixtures: one real mock upstream per session, one real gateway per module."""

from __future__ import annotations

from typing import Iterator

import anthropic
import openai
import pytest

from keystile.testing.upstream import MockUpstreamThread, start_in_thread
from tests.integration.harness import GatewayProcess, standard_config


@pytest.fixture(scope="session")
def upstream() -> Iterator[MockUpstreamThread]:
    url, handle = start_in_thread()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(autouse=True)
def _clean_upstream(upstream: MockUpstreamThread) -> Iterator[None]:
    upstream.reset()
    yield
    upstream.clear_faults()


@pytest.fixture(scope="module")
def gateway(upstream: MockUpstreamThread) -> Iterator[GatewayProcess]:
    with GatewayProcess(standard_config(upstream.url)) as gw:
        yield gw


@pytest.fixture()
def key(gateway: GatewayProcess) -> str:
    """A fresh virtual key with no limits."""
    return gateway.create_key()


@pytest.fixture()
def claude(gateway: GatewayProcess, key: str) -> Iterator[anthropic.Anthropic]:
    """The official Anthropic SDK, pointed at the gateway with a fresh virtual key."""
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as client:
        yield client


@pytest.fixture()
def gpt(gateway: GatewayProcess, key: str) -> Iterator[openai.OpenAI]:
    """The official OpenAI SDK, pointed at the gateway with a fresh virtual key."""
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as client:
        yield client
