"""Adversarial tests run against the same real servers as the integration tests: a mock
upstream per session and a gateway per module (fixtures shared with tests/integration)."""

from tests.integration.conftest import _clean_upstream, claude, gateway, gpt, key, upstream  # noqa: F401
