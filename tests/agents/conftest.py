"""Agent CLI tests run against the same real mock upstream as the integration tests."""

from tests.integration.conftest import _clean_upstream, upstream  # noqa: F401
