"""``keystile connect`` (issue 13.11) on keystile's built-in default config (issue 12.8).

keystile runs exactly as ``make run`` starts it — no ``--config``, no upstream at all: the
built-in mock provider answers every format through the hub. For each agent, ``keystile connect
AGENT --write`` merges its settings into a fresh HOME (which already holds a setting of the
user's own, which must survive), and the real CLI then runs with nothing but those files, the
``export`` lines ``connect`` printed (run by bash) and ``$KEYSTILE_KEY``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.agents.clis import agent_cli
from tests.agents.runners import MOCK_ANSWER, OPENCODE_ENV, access_log, run_command
from tests.integration.harness import KEYSTILE, GatewayProcess

# What each agent is run with once connect has set it up (non-interactive, as the README says).
ARGS = {
    "claude": ["-p", "say hi to the default config"],
    "codex": ["exec", "--skip-git-repo-check", "say hi to the default config"],
    "gemini": ["--skip-trust", "-p", "say hi to the default config"],
    "opencode": ["run", "say hi to the default config"],
}
# The routes each agent's requests took (the access log), all answered by the built-in mock.
ROUTES = {
    "claude": {"/v1/messages"},
    "codex": {"/v1/responses"},
    "gemini": {"/v1beta/models/gemini-3.5-flash-lite:generateContent", "/v1beta/models/gemini-3.8-flash:streamGenerateContent"},
    "opencode": {"/v1/chat/completions"},
}
# A setting of the user's own in each file connect merges into: it must be there afterwards.
USERS_OWN = {
    "claude": (".claude/settings.json", '{"theme": "dark", "env": {"DISABLE_AUTOUPDATER": "1"}}\n'),
    "codex": (".codex/config.toml", '# my codex settings\nmodel_reasoning_effort = "high"\n\n[projects."/srv/app"]\ntrust_level = "trusted"\n'),
    "gemini": (".gemini/settings.json", '{"ui": {"theme": "GitHub"}}\n'),
    "opencode": (".config/opencode/opencode.json", '{"theme": "tokyonight"}\n'),
}


@pytest.fixture(scope="module")
def default_gateway(tmp_path_factory) -> Iterator[GatewayProcess]:
    data = tmp_path_factory.mktemp("data")
    with GatewayProcess(None, env={"XDG_DATA_HOME": str(data), "KEYSTILE_DATABASE_URL": ""}) as gw:
        yield gw


def connect(home: Path, *args: str, key_env: str | None) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **({"KEYSTILE_KEY": key_env} if key_env else {})}
    return subprocess.run([KEYSTILE, "connect", *args], env=env, capture_output=True, text=True, timeout=60)


def mock_answered(gateway: GatewayProcess, key: str, routes: set[str]) -> set[str]:
    """The routes ``key``'s requests took; each answered 200 by a model of the built-in config (the mock)."""
    mine = access_log(gateway, key, routes)
    assert mine and all(line["status"] == 200 and line["deployment"].split("#")[0] in MOCK_GROUPS for line in mine), mine
    return {line["route"] for line in mine}


MOCK_GROUPS = {"claude-*", "gemini-*", "gpt-4o", "claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5", "gpt-4o-mini"}


def exports(printed: str) -> list[str]:
    return [line for line in printed.splitlines() if line.startswith("export ")]


@pytest.mark.parametrize("agent", ["claude", "codex", "gemini", "opencode"])
def test_connect_write_then_the_real_cli_answers_on_the_default_config(default_gateway, tmp_path, agent):
    key = default_gateway.create_key()
    home = tmp_path / "home"
    own_path, own_text = USERS_OWN[agent]
    (home / own_path).parent.mkdir(parents=True)
    (home / own_path).write_text(own_text)

    done = connect(home, agent, "--url", default_gateway.url, "--write", key_env=key)
    assert done.returncode == 0, done.stderr
    assert key not in done.stdout  # it came from $KEYSTILE_KEY: referred to, never printed
    assert re.search(r"\.bak-\d{8}-\d{6}", done.stdout), done.stdout  # the user's file was backed up
    backups = list((home / own_path).parent.glob(Path(own_path).name + ".bak-*"))
    assert [b.read_text() for b in backups] == [own_text]
    for written in home.rglob("*"):
        if written.is_file():
            assert key not in written.read_text(errors="replace"), written

    # Run the CLI through bash with only the lines connect printed, the way a user pastes them.
    script = "\n".join([*exports(done.stdout), "exec " + shlex.join([*agent_cli(agent).command, *ARGS[agent]])])
    env = {"KEYSTILE_KEY": key, **(OPENCODE_ENV if agent == "opencode" else {})}
    run = run_command(agent, ["bash", "-c", script], home, env)
    assert run.returncode == 0, run.explain()
    assert MOCK_ANSWER in run.stdout, run.explain()
    assert key not in default_gateway.log()
    assert mock_answered(default_gateway, key, ROUTES[agent]) == ROUTES[agent]

    text = (home / own_path).read_text()
    if own_path.endswith(".json"):
        merged = json.loads(text)
        for name, value in json.loads(own_text).items():
            if isinstance(value, dict):
                assert value.items() <= merged[name].items(), merged
            else:
                assert merged[name] == value
    else:
        assert own_text.splitlines()[0] in text and 'trust_level = "trusted"' in text and 'model_reasoning_effort = "high"' in text


def test_connect_prints_without_writing_and_claude_code_runs_on_the_printed_lines(default_gateway, tmp_path):
    key = default_gateway.create_key()
    home = tmp_path / "home"
    home.mkdir()
    done = connect(home, "claude", "--url", default_gateway.url, key_env=None)
    assert done.returncode == 0, done.stderr
    assert list(home.iterdir()) == []  # printing writes nothing
    assert "export KEYSTILE_KEY='<your virtual key>'" in done.stdout  # no key given, none in the shell: a placeholder
    lines = [line for line in exports(done.stdout) if not line.startswith("export KEYSTILE_KEY=")]
    script = "\n".join([*lines, "exec " + shlex.join([*agent_cli("claude").command, *ARGS["claude"]])])
    run = run_command("claude", ["bash", "-c", script], home, {"KEYSTILE_KEY": key})
    assert run.returncode == 0, run.explain()
    assert MOCK_ANSWER in run.stdout, run.explain()
