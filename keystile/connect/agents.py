"""What each coding agent needs to talk to keystile: environment variables and config-file settings.

Found by running each CLI against a gateway (``tests/agents``): Claude Code reads
``ANTHROPIC_BASE_URL`` and a key (``ANTHROPIC_AUTH_TOKEN``, or ``apiKeyHelper`` in its
settings); Codex CLI needs a provider block in ``config.toml`` with ``wire_api = "responses"``
and the name of the variable holding the key (``env_key``); Gemini CLI needs
``GOOGLE_GEMINI_BASE_URL`` and ``GEMINI_API_KEY`` plus its auth type chosen in
``settings.json``; opencode needs a provider in ``opencode.json`` listing the models.

A key given on the command line is used as is. Otherwise nothing holds a key: the agents read
``$KEYSTILE_KEY`` when they start (Codex's ``env_key``, opencode's ``{env:…}``, Claude Code's
``apiKeyHelper``; for Gemini CLI the shell passes it on), so no key is printed or written that
the user did not give.
"""

from __future__ import annotations

import fnmatch
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping

AGENTS = ("claude", "codex", "gemini", "opencode")
KEY_VARIABLE = "KEYSTILE_KEY"
PROVIDER_ID = "keystile"
"""The provider's name in Codex's and opencode's configs."""

# The names these agents ask for when none is chosen (Claude Code 2.1: its default and its small
# fast model; Gemini CLI 0.61: its routing call, then the model it picked).
_CLAUDE_CODE_MODELS = ("claude-opus-4-8", "claude-haiku-4-5")
_GEMINI_CLI_MODELS = ("gemini-3.5-flash-lite", "gemini-3.8-flash", "gemini-2.5-pro")


@dataclass(frozen=True)
class Target:
    """The gateway an agent is pointed at."""

    url: str
    """Base URL without a trailing slash, e.g. ``http://127.0.0.1:4000``."""
    key: str | None = None
    """A key given on the command line; None: the agent reads ``$KEYSTILE_KEY``."""
    model: str | None = None
    """The model the agent should use; None: each agent's default (see ``setup_for``)."""
    served: tuple[str, ...] = ()
    """The model names the gateway's config serves, patterns (``claude-*``) included."""

    @property
    def exact_models(self) -> tuple[str, ...]:
        return tuple(name for name in self.served if "*" not in name)

    def serves(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.served)


@dataclass(frozen=True)
class ConfigFile:
    """Settings to merge into one of the agent's files (nothing else in it is touched)."""

    path: Path
    kind: Literal["json", "toml", "dotenv"]
    settings: dict
    """json: a nested object merged key by key; dotenv: variables; toml: ``{"top": {…}, "tables": {name: {…}}}``."""
    secret: bool = False
    """It holds a key: written readable by its owner only."""
    purpose: str = ""
    replaces: tuple[str, ...] = ()
    """The shell variables it stands in for (it is shown as the alternative to exporting them)."""


@dataclass(frozen=True)
class Setup:
    agent: str
    title: str
    env: tuple[tuple[str, str], ...] = ()
    """Shell variables: (name, value as it is typed after ``export NAME=``). ``$KEYSTILE_KEY``
    itself is not among them: whoever shows the setup says how to set it when no key was given."""
    env_after_write: tuple[tuple[str, str], ...] = ()
    """The variables still needed once the files are written."""
    files: tuple[ConfigFile, ...] = ()
    run: str = ""
    notes: tuple[str, ...] = field(default=())


def setup_for(agent: str, target: Target, home: Path, env: Mapping[str, str]) -> Setup:
    """``agent``'s setup for ``target``; ``home`` and ``env`` locate its files (``CODEX_HOME``, …)."""
    builders = {"claude": _claude, "codex": _codex, "gemini": _gemini, "opencode": _opencode}
    try:
        build = builders[agent]
    except KeyError:
        raise ValueError(f"unknown agent {agent!r}; one of {', '.join(AGENTS)}") from None
    return build(target, home, env)


def _key_value(target: Target) -> str:
    """The key as typed in a shell: the one given, else a reference to ``$KEYSTILE_KEY``."""
    return shlex.quote(target.key) if target.key else f'"${KEY_VARIABLE}"'


def _claude(target: Target, home: Path, env: Mapping[str, str]) -> Setup:
    folder = Path(env["CLAUDE_CONFIG_DIR"]) if env.get("CLAUDE_CONFIG_DIR") else home / ".claude"
    settings: dict = {"env": {"ANTHROPIC_BASE_URL": target.url}}
    model = target.model
    if model is None and not all(target.serves(name) for name in _CLAUDE_CODE_MODELS):
        model = _first(target, ("claude-",)) or (target.exact_models[0] if target.exact_models else None)
    if model:
        settings["env"]["ANTHROPIC_MODEL"] = model
    if target.key:
        settings["env"]["ANTHROPIC_AUTH_TOKEN"] = target.key
    else:
        # Claude Code runs this for its key: the key stays in the environment, not in a file.
        settings["apiKeyHelper"] = f"printenv {KEY_VARIABLE}"
    shell = [("ANTHROPIC_BASE_URL", target.url), ("ANTHROPIC_AUTH_TOKEN", _key_value(target))]
    if model:
        shell.append(("ANTHROPIC_MODEL", shlex.quote(model)))
    return Setup(
        "claude",
        "Claude Code",
        env=tuple(shell),
        files=(
            ConfigFile(
                folder / "settings.json", "json", settings, secret=bool(target.key), purpose="read at every start",
                replaces=tuple(name for name, _ in shell),
            ),
        ),
        run="claude",
        notes=("Claude Code sends ANTHROPIC_AUTH_TOKEN as Authorization: Bearer (no API-key prompt), apiKeyHelper's output likewise.",),
    )


def _codex(target: Target, home: Path, env: Mapping[str, str]) -> Setup:
    folder = Path(env["CODEX_HOME"]) if env.get("CODEX_HOME") else home / ".codex"
    # Codex must name a model: a GPT-like name the config serves, else its first, else Codex's own
    model = target.model or _first(target, ("gpt-", "o1", "o3", "o4", "codex")) or next(iter(target.exact_models), "gpt-5")
    provider = {
        "name": "keystile",
        "base_url": f"{target.url}/v1",
        "env_key": KEY_VARIABLE,
        "env_key_instructions": f"export {KEY_VARIABLE}=<your keystile virtual key> (keystile keys create makes one)",
        "wire_api": "responses",
    }
    settings = {"top": {"model": model, "model_provider": PROVIDER_ID}, "tables": {f"model_providers.{PROVIDER_ID}": provider}}
    return Setup(
        "codex",
        "Codex CLI",
        # config.toml names the variable Codex reads the key from; a key given is put there
        env=((KEY_VARIABLE, shlex.quote(target.key)),) if target.key else (),
        env_after_write=((KEY_VARIABLE, shlex.quote(target.key)),) if target.key else (),
        files=(ConfigFile(folder / "config.toml", "toml", settings, purpose="the provider, and the model to use"),),
        run="codex",
        notes=("Codex speaks only the Responses API (wire_api = \"responses\"); keystile serves it on any model.",),
    )


def _gemini(target: Target, home: Path, env: Mapping[str, str]) -> Setup:
    folder = home / ".gemini"
    settings: dict = {"security": {"auth": {"selectedType": "gemini-api-key"}}}
    model = target.model
    if model is None and not all(target.serves(name) for name in _GEMINI_CLI_MODELS):
        model = _first(target, ("gemini-",)) or (target.exact_models[0] if target.exact_models else None)
    if model:
        settings["model"] = {"name": model}
    dotenv = {"GOOGLE_GEMINI_BASE_URL": target.url}
    shell = (("GOOGLE_GEMINI_BASE_URL", target.url), ("GEMINI_API_KEY", _key_value(target)))
    after: tuple[tuple[str, str], ...] = (("GEMINI_API_KEY", _key_value(target)),)
    if target.key:
        dotenv["GEMINI_API_KEY"] = target.key
        after = ()  # ~/.gemini/.env holds both
    files = (
        ConfigFile(folder / "settings.json", "json", settings, purpose="its auth type: it refuses to start without one"),
        ConfigFile(folder / ".env", "dotenv", dotenv, secret=bool(target.key), purpose="read at start", replaces=tuple(dotenv)),
    )
    notes = ["Gemini CLI reads ~/.gemini/.env only in folders it trusts: in scripts run gemini --skip-trust -p \"…\"."]
    if not model:
        notes.append("It picks its own gemini-… models (a routing call, then the answer): this config serves them.")
    return Setup("gemini", "Gemini CLI", env=shell, env_after_write=after, files=files, run="gemini", notes=tuple(notes))


def _opencode(target: Target, home: Path, env: Mapping[str, str]) -> Setup:
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    models = list(target.exact_models)
    if target.model and target.model not in models:
        models.insert(0, target.model)
    model = target.model or (models[0] if models else None)
    provider = {
        "npm": "@ai-sdk/openai-compatible",
        "name": "keystile",
        "options": {"baseURL": f"{target.url}/v1", "apiKey": target.key or f"{{env:{KEY_VARIABLE}}}"},
        "models": {name: {} for name in models},
    }
    settings: dict = {"$schema": "https://opencode.ai/config.json", "provider": {PROVIDER_ID: provider}}
    if model:
        settings["model"] = f"{PROVIDER_ID}/{model}"
    return Setup(
        "opencode",
        "opencode",
        files=(ConfigFile(base / "opencode" / "opencode.json", "json", settings, secret=bool(target.key), purpose="the provider and its models"),),
        run=f"opencode   # or: opencode run -m {PROVIDER_ID}/{model or 'MODEL'} \"…\"",
        notes=("Without internet, also set OPENCODE_DISABLE_MODELS_FETCH=1 (it looks up models.dev at start).",),
    )


def _first(target: Target, prefixes: tuple[str, ...]) -> str | None:
    return next((name for name in target.exact_models if name.startswith(prefixes)), None)


