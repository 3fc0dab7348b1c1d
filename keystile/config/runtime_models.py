"""Deployments added at run time (``/model/new``): a LiteLLM ``model_list`` entry, read as the config reads it.

The same reader as a LiteLLM config file (``read_model_entry``), so a model added through the
API obeys the same rules: its provider must be one keystile serves, ``api_base`` is read as
LiteLLM reads it, ``os.environ/NAME`` references resolve in this instance's environment.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Mapping

from keystile.config.litellm import read_model_entry
from keystile.config.model import Deployment
from keystile.config.source import Source

SOURCE_NAME = "body"


def read_runtime_model(
    model_id: str, model_name: Any, litellm_params: Any, model_info: Any, env: Mapping[str, str] | None = None
) -> tuple[Deployment | None, list[str]]:
    """(the deployment, or None; the problems that prevent it, each naming its field).

    Problems read ``litellm_params.model: unknown provider 'opneai' …`` — the path in the
    request body, without the source name the config reader puts in front.
    """
    entry = {"model_name": model_name, "litellm_params": litellm_params}
    if model_info is not None:
        entry["model_info"] = model_info
    source = Source(SOURCE_NAME, entry, {}, os.environ if env is None else env)
    deployment = read_model_entry(source, entry, (), {})
    problems = [p.removeprefix(f"{SOURCE_NAME}: ") for p in source.problems]
    if deployment is None and not problems:
        problems = [w.removeprefix(f"{SOURCE_NAME}: ") for w in source.warnings] or ["the model cannot be served"]
    if problems:
        return None, problems
    assert deployment is not None
    return replace(deployment, id=model_id, source_line=None), []
