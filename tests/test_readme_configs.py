"""Every YAML block in the README is a config ``keystile config check`` accepts (issue 13.2).

A reader copies them; one that fails the checker (the reference config once did, on a fallback
its own pattern served) is a broken promise. Variables the blocks reference are set to
placeholders, as a reader's environment would have them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
KEYSTILE = str(Path(sys.executable).with_name("keystile"))
_BLOCK = re.compile(r"```yaml\n(.*?)```", re.DOTALL)
_VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-[^}]*)?\}|os\.environ/([A-Z_][A-Z0-9_]*)")


def _blocks() -> list[str]:
    return _BLOCK.findall(README.read_text())


def test_the_readme_has_config_blocks():
    assert len(_blocks()) >= 3


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_readme_config_block_passes_config_check(index, tmp_path):
    block = _blocks()[index]
    path = tmp_path / "config.yaml"
    path.write_text(block)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTILE_")}
    for match in _VARIABLE.finditer(block):
        env[match.group(1) or match.group(2)] = "placeholder-value"
    result = subprocess.run([KEYSTILE, "config", "check", str(path)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"README YAML block {index + 1}:\n{block}\n--- config check said:\n{result.stdout}{result.stderr}"


def test_the_claude_code_example_serves_claude_codes_default_model(monkeypatch, tmp_path):
    """Plain ``claude`` asks for its default model (claude-opus-4-8 in 2.1.197); the example serves it."""
    from keystile.config import load_settings
    from keystile.routing.router import Router

    [block] = [b for b in _blocks() if "the name Claude Code asks for" in b]
    monkeypatch.setenv("OPENAI_API_KEY", "placeholder-value")
    path = tmp_path / "keystile.yaml"
    path.write_text(block)
    router = Router(load_settings(str(path)))
    for name in ("claude-opus-4-8", "claude-sonnet-4-5", "claude-haiku-4-5"):
        assert router.group(name) is not None, name
