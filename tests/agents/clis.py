"""The real coding-agent CLIs, installed from the npm registry at pinned versions, for tests.

``npm install --ignore-scripts`` into a cache folder (``KEYSTILE_AGENTS_DIR``, default
``<repo>/.agents``, gitignored) once per machine; each CLI ships its binary inside a platform
package (Gemini CLI is plain JavaScript for Node). An install takes ~40 s and ~1.1 GB the first
time; later runs reuse the folder. Tests that need a CLI call ``agent_cli(name)``, which
installs on first use and fails (never skips) when npm cannot install it: the agents are what
keystile is for.
"""

from __future__ import annotations

import fcntl
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = {
    "@anthropic-ai/claude-code": "2.1.197",
    "@openai/codex": "0.171.0",
    "@google/gemini-cli": "0.61.0",
    "opencode-ai": "1.18.33",
}


@dataclass(frozen=True)
class AgentCli:
    name: str
    command: tuple[str, ...]
    """argv prefix that runs the CLI."""


def agents_dir() -> Path:
    return Path(os.environ.get("KEYSTILE_AGENTS_DIR") or ROOT / ".agents")


def _arch() -> tuple[str, str]:
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "x64", "x86_64"
    if machine in ("aarch64", "arm64"):
        return "arm64", "aarch64"
    pytest.fail(f"no agent CLI binaries for {machine}", pytrace=False)


def _install() -> Path:
    folder = agents_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / ".installed"
    wanted = " ".join(f"{name}@{version}" for name, version in sorted(VERSIONS.items()))
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist workers or parallel runs install once
        if stamp.exists() and stamp.read_text() == wanted:
            return folder / "node_modules"
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to install the agent CLIs (Debian: apt-get install npm)", pytrace=False)
        result = subprocess.run(
            [npm, "install", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(folder),
             *wanted.split()],
            capture_output=True, text=True, timeout=900,
        )
        if result.returncode != 0:
            pytest.fail(f"npm could not install the agent CLIs:\n{result.stderr[-3000:]}", pytrace=False)
        stamp.write_text(wanted)
    return folder / "node_modules"


def agent_cli(name: str) -> AgentCli:
    """``claude``, ``codex``, ``gemini`` or ``opencode``, installed if need be."""
    modules = _install()
    npm_arch, rust_arch = _arch()
    if name == "claude":
        path = modules / "@anthropic-ai" / f"claude-code-linux-{npm_arch}" / "claude"
        command: tuple[str, ...] = (str(path),)
    elif name == "codex":
        path = modules / "@openai" / f"codex-linux-{npm_arch}" / "vendor" / f"{rust_arch}-unknown-linux-musl" / "bin" / "codex"
        command = (str(path),)
    elif name == "opencode":
        path = modules / f"opencode-linux-{npm_arch}" / "bin" / "opencode"
        command = (str(path),)
    elif name == "gemini":
        path = modules / "@google" / "gemini-cli" / "bundle" / "gemini.js"
        node = shutil.which("node")
        if node is None:
            pytest.fail("node is needed to run Gemini CLI", pytrace=False)
        command = (node, str(path))
    else:
        raise ValueError(name)
    if not path.exists():
        pytest.fail(f"{name}: {path} is missing after npm install", pytrace=False)
    return AgentCli(name, command)
