"""Run a real agent CLI non-interactively, the way ``../shared/agent-traffic/README.md`` found works.

Each run gets a private HOME (the CLIs keep config, sessions and caches there) and an
environment built from scratch, so a developer's own ``OPENAI_API_KEY`` or
``ANTHROPIC_BASE_URL`` never reaches a test. Every run is bounded by a timeout.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.agents.clis import agent_cli

RUN_TIMEOUT = 60.0
"""Seconds one CLI run may take (they take 0.3–8 s on an idle 2-core machine)."""

RUNS: list[tuple[str, float, float]] = []
"""(CLI, wall seconds, CPU seconds) of every run in this session, summed up at the end (conftest)."""

# What the mock model answers a plain prompt with (keystile.providers.mock_replies).
MOCK_ANSWER = "Hello from keystile mock. You said:"


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    cpu_seconds: float
    """User + system CPU the CLI used (its wall time on a busy machine says little)."""

    def explain(self) -> str:
        return f"exit {self.returncode} after {self.seconds:.1f} s ({self.cpu_seconds:.1f} s CPU)\n--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"


def run_cli(name: str, args: list[str], home: Path, env: dict[str, str] | None = None, timeout: float = RUN_TIMEOUT) -> Run:
    """``name`` with ``args`` in ``home/work``, HOME=home, only ``env`` added to a minimal environment."""
    return run_command(name, [*agent_cli(name).command, *args], home, env, timeout)


def run_command(name: str, argv: list[str], home: Path, env: dict[str, str] | None = None, timeout: float = RUN_TIMEOUT) -> Run:
    """``argv`` as ``run_cli`` runs a CLI; ``name`` labels it in the timing summary."""
    work = home / "work"
    work.mkdir(parents=True, exist_ok=True)
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        result = subprocess.run(
            argv,
            env={**base, **(env or {})},
            cwd=work,
            stdin=subprocess.DEVNULL,  # Codex reads extra input from a stdin that is not a terminal
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise AssertionError(f"{name} did not finish within {timeout} s\n--- stdout\n{out[-3000:]}\n--- stderr\n{err[-3000:]}") from None
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    RUNS.append((name, time.monotonic() - started, cpu))
    return Run(result.returncode, result.stdout, result.stderr, time.monotonic() - started, cpu)


# --- how each CLI is pointed at a gateway --------------------------------------------------------


def codex_config(home: Path, base_url: str, model: str, *, websockets: bool = False, extra: str = "", provider: str = "") -> None:
    """``~/.codex/config.toml`` with a provider block; the key comes from ``GW_API_KEY`` (sent as Bearer)."""
    folder = home / ".codex"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(
        f'{extra}model = "{model}"\nmodel_provider = "gw"\n\n[model_providers.gw]\nname = "Gateway"\n'
        f'base_url = "{base_url}"\nenv_key = "GW_API_KEY"\nwire_api = "responses"\n'
        + ("supports_websockets = true\n" if websockets else "")
        + provider
    )


def run_codex(home: Path, key: str, prompt: str = "say hi", env: dict[str, str] | None = None) -> Run:
    return run_cli("codex", ["exec", "--skip-git-repo-check", prompt], home, {"GW_API_KEY": key, **(env or {})})


def run_gemini(home: Path, base_url: str, key: str, prompt: str = "say hi", model: str | None = None) -> Run:
    """Gemini CLI in non-interactive mode needs its auth type chosen in settings.json and ``--skip-trust``."""
    settings = home / ".gemini" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}}))
    args = ["--skip-trust", "-p", prompt, *(["-m", model] if model else [])]
    return run_cli("gemini", args, home, {"GOOGLE_GEMINI_BASE_URL": base_url, "GEMINI_API_KEY": key})


OPENCODE_ENV = {"OPENCODE_DISABLE_MODELS_FETCH": "1", "OPENCODE_DISABLE_AUTOUPDATE": "1"}


def run_opencode(
    home: Path, package: str, base_url: str, key: str, model: str, prompt: str = "say hi", env: dict[str, str] | None = None
) -> Run:
    """opencode with one provider (``@ai-sdk/<package>``) named ``gw``, its key from ``GW_KEY``."""
    config = {
        "provider": {
            "gw": {"npm": f"@ai-sdk/{package}", "options": {"baseURL": base_url, "apiKey": "{env:GW_KEY}"}, "models": {model: {}}}
        }
    }
    variables = {**OPENCODE_ENV, "OPENCODE_CONFIG_CONTENT": json.dumps(config), "GW_KEY": key, **(env or {})}
    return run_cli("opencode", ["run", "-m", f"gw/{model}", prompt], home, variables)


def run_claude(home: Path, base_url: str, key: str, prompt: str = "say hi", env: dict[str, str | None] | None = None) -> Run:
    """Claude Code with the key in ``ANTHROPIC_API_KEY``; ``env`` adds variables (None removes one)."""
    base: dict[str, str | None] = {"ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": key, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    merged = {**base, **(env or {})}
    return run_cli("claude", ["-p", prompt], home, {k: v for k, v in merged.items() if v is not None})


# --- what the upstream received ------------------------------------------------------------------


def upstream_calls(upstream, path: str, upstream_key: str, virtual_key: str) -> list[dict]:  # type: ignore[no-untyped-def]
    """The upstream's requests on ``path``: at least one, each with the upstream's key; no request
    anywhere carries the virtual key."""
    recorded = upstream.requests()
    assert virtual_key not in json.dumps(recorded)
    calls = [r for r in recorded if r["path"] == path]
    assert calls, [(r["method"], r["path"]) for r in recorded]
    for call in calls:
        headers = dict(call["headers"])
        credentials = [headers.get(h, "") for h in ("x-api-key", "authorization", "x-goog-api-key", "api-key")]
        assert any(upstream_key in c for c in credentials), headers
    return calls


def access_log(gateway, key: str, routes: set[str]) -> list[dict]:  # type: ignore[no-untyped-def]
    """The gateway's access-log lines for ``key``'s requests (a key is named there by its hash's
    first 12 digits), once each of ``routes`` is among them: the log is written four times a second."""
    short = hashlib.sha256(key.encode()).hexdigest()[:12]
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(line) for line in gateway.log().splitlines() if line.startswith('{"ts"')]
        mine = [line for line in lines if line.get("key") == short]
        if routes <= {line["route"] for line in mine} or time.monotonic() > deadline:
            return mine
        time.sleep(0.05)
