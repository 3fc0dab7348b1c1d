"""``keystile connect``: each agent's settings, merged into existing files without losing anything.

The real CLIs running on what it writes are in ``tests/agents/test_connect.py``; here the merge
rules, backups, file modes, defaults and the rule that no key is shown that was not given.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

from keystile.connect import Target, setup_for, write_setup
from keystile.connect.files import MergeError, merge_dotenv, merge_json, merge_toml
from tests.integration.harness import KEYSTILE

CODEX = {
    "top": {"model": "gpt-5", "model_provider": "keystile"},
    "tables": {"model_providers.keystile": {"name": "keystile", "base_url": "http://gw:4000/v1", "wire_api": "responses"}},
}


def test_json_is_merged_key_by_key():
    old = '{"theme": "dark", "env": {"DISABLE_AUTOUPDATER": "1", "ANTHROPIC_BASE_URL": "http://old"}, "permissions": {"allow": ["Bash"]}}'
    merged = json.loads(merge_json(old, {"env": {"ANTHROPIC_BASE_URL": "http://gw:4000"}, "apiKeyHelper": "printenv KEYSTILE_KEY"}, "f"))
    assert merged == {
        "theme": "dark",
        "env": {"DISABLE_AUTOUPDATER": "1", "ANTHROPIC_BASE_URL": "http://gw:4000"},
        "permissions": {"allow": ["Bash"]},
        "apiKeyHelper": "printenv KEYSTILE_KEY",
    }


@pytest.mark.parametrize("old", ['{"a": 1,}', "// opencode allows comments in .jsonc\n{}", "[1, 2]"])
def test_a_file_that_is_not_a_json_object_is_left_alone(old):
    with pytest.raises(MergeError, match="by hand"):
        merge_json(old, {"x": 1}, "settings.json")


def test_toml_top_level_keys_are_replaced_in_place_and_our_table_whole():
    old = (
        "# my settings\n"
        'model = "o3"\n'
        'approval_policy = "never"\n'
        'model_provider = "openai"\n'
        "\n"
        "[model_providers.keystile]\n"
        'base_url = "http://stale:1/v1"\n'
        'query_params = { a = "b" }\n'
        "\n"
        '[projects."/srv/app"]\n'
        'trust_level = "trusted"\n'
        "\n"
        "[model_providers.other]\n"
        'name = "Other"\n'
    )
    text = merge_toml(old, CODEX, "config.toml")
    data = tomllib.loads(text)
    assert data["model"] == "gpt-5" and data["model_provider"] == "keystile" and data["approval_policy"] == "never"
    assert data["model_providers"]["keystile"] == CODEX["tables"]["model_providers.keystile"]  # stale keys gone
    assert data["model_providers"]["other"] == {"name": "Other"}
    assert data["projects"] == {"/srv/app": {"trust_level": "trusted"}}
    assert text.startswith("# my settings\n")
    assert text.count("model = ") == 1


def test_toml_into_an_empty_or_missing_file_and_again_is_the_same():
    once = merge_toml("", CODEX, "config.toml")
    assert tomllib.loads(once) == {**CODEX["top"], "model_providers": {"keystile": CODEX["tables"]["model_providers.keystile"]}}
    assert merge_toml(once, CODEX, "config.toml") == once


@pytest.mark.parametrize(
    "old",
    ['model = "o3"\nmodel = "o4"\n', 'model_providers.keystile.name = "x"\n'],
    ids=["invalid", "dotted-keys-clash"],
)
def test_toml_that_cannot_be_merged_is_left_alone(old):
    with pytest.raises(MergeError):
        merge_toml(old, CODEX, "config.toml")


def test_dotenv_lines_are_replaced_or_added():
    old = "# mine\nFOO=1\nexport GOOGLE_GEMINI_BASE_URL=http://old\n"
    assert merge_dotenv(old, {"GOOGLE_GEMINI_BASE_URL": "http://gw:4000", "GEMINI_API_KEY": "k"}) == (
        "# mine\nFOO=1\nGOOGLE_GEMINI_BASE_URL=http://gw:4000\nGEMINI_API_KEY=k\n"
    )


def test_write_backs_up_what_it_changes_and_keeps_a_given_key_private(tmp_path):
    target = Target(url="http://gw:4000", key="sk-ks-given-key", served=("gemini-*",))
    settings = tmp_path / ".gemini" / "settings.json"
    settings.parent.mkdir()
    settings.write_text('{"ui": {"theme": "GitHub"}}')
    written = write_setup(setup_for("gemini", target, tmp_path, {}))
    by_path = {w.path: w for w in written}
    assert by_path[settings].backup is not None and by_path[settings].backup.read_text() == '{"ui": {"theme": "GitHub"}}'
    assert json.loads(settings.read_text())["ui"] == {"theme": "GitHub"}
    dotenv = tmp_path / ".gemini" / ".env"
    assert "GEMINI_API_KEY=sk-ks-given-key" in dotenv.read_text()
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600 and by_path[dotenv].backup is None
    again = write_setup(setup_for("gemini", target, tmp_path, {}))
    assert [w.changed for w in again] == [False, False]  # nothing to change: no new backup
    assert len(list(settings.parent.glob("*.bak-*"))) == 1


def test_nothing_is_written_when_one_file_cannot_be_merged(tmp_path):
    settings = tmp_path / ".gemini" / "settings.json"
    settings.parent.mkdir()
    settings.write_text("{broken")
    with pytest.raises(MergeError):
        write_setup(setup_for("gemini", Target(url="http://gw:4000"), tmp_path, {}))
    assert settings.read_text() == "{broken" and not (tmp_path / ".gemini" / ".env").exists()


def test_files_are_where_each_agent_looks(tmp_path):
    env = {"CODEX_HOME": "/c", "XDG_CONFIG_HOME": "/x", "CLAUDE_CONFIG_DIR": "/cc"}
    target = Target(url="http://gw:4000")
    paths = {agent: [str(f.path) for f in setup_for(agent, target, tmp_path, env).files] for agent in ("claude", "codex", "opencode")}
    assert paths == {"claude": ["/cc/settings.json"], "codex": ["/c/config.toml"], "opencode": ["/x/opencode/opencode.json"]}
    home = {agent: [str(f.path.relative_to(tmp_path)) for f in setup_for(agent, target, tmp_path, {}).files] for agent in
            ("claude", "codex", "gemini", "opencode")}
    assert home == {
        "claude": [".claude/settings.json"],
        "codex": [".codex/config.toml"],
        "gemini": [".gemini/settings.json", ".gemini/.env"],
        "opencode": [".config/opencode/opencode.json"],
    }


def test_models_each_agent_is_given():
    served = ("claude-sonnet-4-5", "gpt-4o", "claude-*")
    target = Target(url="http://gw:4000", served=served)
    codex = setup_for("codex", target, Path("/h"), {}).files[0].settings
    assert codex["top"]["model"] == "gpt-4o"  # Codex needs one: the first GPT-like name
    gemini = setup_for("gemini", target, Path("/h"), {}).files[0].settings
    assert gemini["model"] == {"name": "claude-sonnet-4-5"}  # gemini-… names are not served here
    assert "model" not in setup_for("gemini", Target(url="u", served=("gemini-*",)), Path("/h"), {}).files[0].settings
    claude = setup_for("claude", target, Path("/h"), {}).files[0].settings
    assert "ANTHROPIC_MODEL" not in claude["env"]  # claude-* serves whatever Claude Code asks for
    only_gpt = setup_for("claude", Target(url="u", served=("gpt-4o",)), Path("/h"), {}).files[0].settings
    assert only_gpt["env"]["ANTHROPIC_MODEL"] == "gpt-4o"
    opencode = setup_for("opencode", Target(url="u", served=served, model="o3"), Path("/h"), {}).files[0].settings
    assert list(opencode["provider"]["keystile"]["models"]) == ["o3", "claude-sonnet-4-5", "gpt-4o"]
    assert opencode["model"] == "keystile/o3"


def run_connect(home: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    return subprocess.run([KEYSTILE, "connect", *args], env={**base, **(env or {})}, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("agent", ["claude", "codex", "gemini", "opencode"])
def test_the_command_shows_no_key_it_was_not_given(tmp_path, agent):
    in_env = run_connect(tmp_path, agent, env={"KEYSTILE_KEY": "sk-ks-from-the-environment"})
    assert in_env.returncode == 0, in_env.stderr
    assert "sk-ks-from-the-environment" not in in_env.stdout
    assert "http://127.0.0.1:4000" in in_env.stdout  # the built-in config's host and port
    none = run_connect(tmp_path, agent)
    assert "export KEYSTILE_KEY='<your virtual key>'" in none.stdout
    given = run_connect(tmp_path, agent, "--key", "sk-ks-given-on-the-command-line", "--url", "http://gw.example:8080/")
    assert "sk-ks-given-on-the-command-line" in given.stdout and "<your virtual key>" not in given.stdout
    assert "http://gw.example:8080" in given.stdout and "8080//" not in given.stdout
    assert list(tmp_path.iterdir()) == []  # printing writes nothing


def test_the_url_comes_from_the_configs_server_section(tmp_path):
    config = tmp_path / "keystile.yaml"
    config.write_text("server:\n  host: 0.0.0.0\n  port: 8123\nmodels:\n  - name: m\n    provider: mock\n")
    done = run_connect(tmp_path, "codex", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert 'base_url = "http://127.0.0.1:8123/v1"' in done.stdout and 'model = "m"' in done.stdout
    bad = run_connect(tmp_path, "codex", "--url", "gw:4000")
    assert bad.returncode == 2 and "http://" in bad.stderr
    broken = tmp_path / ".codex"
    broken.mkdir()
    (broken / "config.toml").write_text("model = \n")
    refused = run_connect(tmp_path, "codex", "--write")
    assert refused.returncode == 1 and "nothing written" in refused.stderr
    assert (broken / "config.toml").read_text() == "model = \n"


README = Path(__file__).resolve().parents[1] / "README.md"
_AGENT_HEADINGS = {"claude": "**Claude Code**", "codex": "**Codex CLI**", "gemini": "**Gemini CLI**", "opencode": "**opencode**"}


def _readme_blocks(agent: str) -> list[tuple[str, str]]:
    """(language, text) of the fenced blocks under the agent's heading in "Coding agents"."""
    section = re.split(r"\n##+ ", README.read_text().split("### Coding agents", 1)[1], maxsplit=1)[0]
    part = section.split(_AGENT_HEADINGS[agent], 1)[1]
    for other in _AGENT_HEADINGS.values():
        part = part.split("\n" + other, 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", part, re.DOTALL)


def _json_snippets(printed: str) -> list[object]:
    return [json.loads(m) for m in re.findall(r"^\{\n.*?^\}$", printed, re.DOTALL | re.MULTILINE)]


@pytest.mark.parametrize("agent", ["claude", "codex", "gemini", "opencode"])
def test_the_readme_shows_what_connect_prints(tmp_path, agent):
    printed = run_connect(tmp_path, agent, env={"KEYSTILE_KEY": "sk-ks-in-the-shell"}).stdout
    blocks = _readme_blocks(agent)
    assert blocks
    for language, text in blocks:
        if language == "json":
            assert json.loads(text) in _json_snippets(printed), text
        else:
            for line in text.splitlines():
                assert line in printed.splitlines(), f"README line {line!r} is not what keystile connect {agent} prints"
