"""Shared fixtures: one real mock upstream per session, one real gateway per module."""

from __future__ import annotations

from typing import Iterator

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
