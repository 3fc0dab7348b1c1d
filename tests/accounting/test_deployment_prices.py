"""Which price a deployment is charged at: the table by its model id, by ``base_model``, or its own overrides."""

from __future__ import annotations

import time

import pytest

from keystile.accounting.pricing import price_for
from keystile.accounting.spend import Accountant
from keystile.config import load_settings
from keystile.metrics import Metrics

NATIVE = """\
models:
  - name: gpt-4o
    provider: azure
    model: my-gpt4o-deployment
    api_base: https://example.openai.azure.com
    api_key: x
    base_model: azure/gpt-4o
  - name: unpriced
    provider: azure
    model: my-other-deployment
    api_base: https://example.openai.azure.com
    api_key: x
  - name: negotiated
    provider: anthropic
    model: claude-sonnet-4-5-20250929
    api_key: x
    input_cost_per_token: 0.000002
"""

LITELLM = """\
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: azure/my-gpt4o-deployment
      api_base: https://example.openai.azure.com
      api_key: x
      output_cost_per_token: 0.00002
    model_info:
      base_model: azure/gpt-4o
"""


def prices(tmp_path, text: str) -> dict:  # type: ignore[no-untyped-def]
    path = tmp_path / "config.yaml"
    path.write_text(text)
    settings = load_settings(str(path), env={})
    assert settings.warnings == ()
    accountant = Accountant(None, None, Metrics(), time.time)  # type: ignore[arg-type]
    return {d.model_name: accountant.price(d) for d in settings.deployments}


def test_native_base_model_and_overrides(tmp_path):
    table = prices(tmp_path, NATIVE)
    assert table["gpt-4o"] == price_for("gpt-4o")
    assert table["unpriced"] is None
    sonnet = price_for("claude-sonnet-4-5")
    assert table["negotiated"].input == pytest.approx(0.000002)
    assert (table["negotiated"].output, table["negotiated"].cache_read) == (sonnet.output, sonnet.cache_read)


def test_litellm_model_info_base_model(tmp_path):
    price = prices(tmp_path, LITELLM)["gpt-4o"]
    table = price_for("gpt-4o")
    assert price.input == table.input and price.output == pytest.approx(0.00002)
