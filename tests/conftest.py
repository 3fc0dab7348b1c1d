"""Fixtures every test directory may use: the real PostgreSQL and Redis servers (see tests/services.py)."""

from __future__ import annotations

import pytest

from tests.services import ServiceUrls, shared_services


@pytest.fixture(scope="session")
def services() -> ServiceUrls:
    """The shared PostgreSQL and Redis (tests using it are marked ``services``)."""
    return shared_services()
