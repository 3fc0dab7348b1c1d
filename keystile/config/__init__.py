"""Configuration: keystile's YAML format or a LiteLLM proxy config, validated into ``Settings``.

``load_settings`` is the only entry point. Environment variables ``KEYSTILE_MASTER_KEY``,
``KEYSTILE_DATABASE_URL`` and ``KEYSTILE_REDIS_URL`` override the file. A relative SQLite path
comes back absolute (``config.paths``), so every command run from anywhere opens the same file.
"""

from __future__ import annotations

import dataclasses
import os
from importlib import resources
from pathlib import Path
from typing import Mapping

from keystile.config.litellm import read_litellm
from keystile.config.model import Deployment, RouterSettings, ServerSettings, Settings, SpendSettings
from keystile.config.native import read_native
from keystile.config.paths import absolute_database_url, data_dir
from keystile.config.source import ConfigError, parse_yaml

__all__ = [
    "ConfigError",
    "Deployment",
    "RouterSettings",
    "ServerSettings",
    "Settings",
    "SpendSettings",
    "load_settings",
    "DEFAULT_CONFIG_NAME",
]

DEFAULT_CONFIG_NAME = "<built-in default>"


def read_config_text(path: str | None) -> tuple[str, str]:
    """(text, name) of the config at ``path``, or of the built-in default when ``path`` is None."""
    if path is None:
        return resources.files("keystile").joinpath("default_config.yaml").read_text("utf-8"), DEFAULT_CONFIG_NAME
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(), path
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None


def load_settings(path: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read, validate and return the settings; raises ``ConfigError`` listing every problem."""
    env = os.environ if env is None else env
    text, name = read_config_text(path)
    source = parse_yaml(text, name, env)
    if not isinstance(source.data, dict):
        raise ConfigError([f"{name}:1: the configuration must be a mapping (key: value pairs)"])
    settings = read_litellm(source) if "model_list" in source.data else read_native(source)
    if not settings.deployments and not source.problems:
        source.problem((), "no models are configured")
    if source.problems:
        raise ConfigError(source.problems)
    env_database = env.get("KEYSTILE_DATABASE_URL")
    overrides = {
        "master_key": env.get("KEYSTILE_MASTER_KEY") or settings.master_key,
        "database_url": absolute_database_url(env_database or settings.database_url, _database_base(path, env_database, env)),
        "redis_url": env.get("KEYSTILE_REDIS_URL") or settings.redis_url,
        "source": name,
        "warnings": tuple(source.warnings),
    }
    return dataclasses.replace(settings, **overrides)


def _database_base(path: str | None, env_database: str | None, env: Mapping[str, str]) -> Path:
    """The folder a relative SQLite path is read against (see ``keystile.config.paths``)."""
    if env_database:
        return Path.cwd()
    if path is None:
        return data_dir(env)
    return Path(path).resolve().parent
