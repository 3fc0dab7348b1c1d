"""The ``keystile`` command: config check with file:line, keys on the store, first-start master key."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.integration.harness import KEYSTILE, GatewayProcess, anthropic_body


def run(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([KEYSTILE, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=60)


def test_config_check_reports_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent(
            """\
            models:
              - name: a
                provider: anthropic
                rpm: lots
              - name: b
                provider: nosuch
            router:
              fallbacks:
                a: [missing-model]
            """
        )
    )
    result = run("config", "check", str(bad))
    assert result.returncode == 1
    assert f"{bad}:4: models[0].rpm: expected an integer" in result.stdout
    assert f"{bad}:6: models[1].provider: must be one of" in result.stdout
    assert "unknown model 'missing-model'" in result.stdout

    broken = tmp_path / "broken.yaml"
    broken.write_text("models:\n  - name: a\n    provider: [unclosed\n")
    result = run("config", "check", str(broken))
    assert result.returncode == 1 and "invalid YAML" in result.stdout and f"{broken}:" in result.stdout


def test_litellm_config_is_read_as_is(tmp_path, upstream):
    config = tmp_path / "litellm.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            model_list:
              - model_name: claude-sonnet
                litellm_params:
                  model: anthropic/claude-sonnet-4-5
                  api_key: os.environ/MY_ANTHROPIC_KEY
                  api_base: {upstream.url}
              - model_name: gpt-4o
                litellm_params:
                  model: openai/gpt-4o
                  api_key: os.environ/MY_OPENAI_KEY
                  api_base: {upstream.url}/v1
              - model_name: local
                litellm_params:
                  model: openai/qwen2.5
                  api_base: {upstream.url}/v1
              - model_name: azure-gpt
                litellm_params:
                  model: azure/gpt4o-prod
                  api_base: {upstream.url}
                  api_key: os.environ/MY_AZURE_KEY
                  api_version: "2024-10-21"
            general_settings:
              master_key: sk-litellm-master-1234
            """
        )
    )
    env = {"MY_ANTHROPIC_KEY": "up-a", "MY_OPENAI_KEY": "up-o", "MY_AZURE_KEY": "up-z"}
    checked = run("config", "check", str(config), env=env)
    assert checked.returncode == 0, checked.stdout
    assert "litellm format" in checked.stdout
    missing = run("config", "check", str(config), env={"MY_ANTHROPIC_KEY": "x"})
    assert missing.returncode == 1 and "MY_OPENAI_KEY is not set" in missing.stdout

    gw = GatewayProcess(config.read_text(), workdir=tmp_path, master_key=None, env=env)
    with gw:
        for model in ("claude-sonnet", "gpt-4o", "local", "azure-gpt"):
            path = "/v1/messages" if model == "claude-sonnet" else "/v1/chat/completions"
            body = anthropic_body(model=model) if model == "claude-sonnet" else {"model": model, "messages": [{"role": "user", "content": "hi"}]}
            response = httpx.post(f"{gw.url}{path}", json=body, headers={"authorization": "Bearer sk-litellm-master-1234"})
            assert response.status_code == 200, (model, response.text)
        sent = {r["path"]: dict(r["headers"]) for r in upstream.requests()}
        assert sent["/v1/messages"]["x-api-key"] == "up-a"
        assert sent["/openai/deployments/gpt4o-prod/chat/completions"]["api-key"] == "up-z"


def test_master_key_generated_once_and_only_its_hash_stored(tmp_path, upstream):
    config = "models:\n  - name: m\n    provider: mock\n"
    first = GatewayProcess(config, workdir=tmp_path, master_key=None)
    with first:
        pass
    printed = re.findall(r"sk-ks-[A-Za-z0-9_-]{32}", first.log())
    assert len(set(printed)) == 1
    master = printed[0]
    db = sqlite3.connect(tmp_path / "keystile.db")
    stored = dict(db.execute("SELECT name, value FROM meta").fetchall())
    assert stored["master_key_hash"] == hashlib.sha256(master.encode()).hexdigest()
    dump = "\n".join(db.iterdump())
    assert master not in dump

    (tmp_path / "gateway.log").unlink()
    second = GatewayProcess(config, workdir=tmp_path, master_key=None)
    second.master_key = master
    with second:
        assert master not in second.log()
        assert second.admin("GET", "/key/list").status_code == 200
        response = httpx.post(f"{second.url}/v1/messages", json=anthropic_body(model="m"), headers={"x-api-key": master})
        assert response.status_code == 200


def test_keys_commands_work_on_the_store(tmp_path, upstream):
    env = {"KEYSTILE_DATABASE_URL": f"sqlite:///{tmp_path / 'keys.db'}", "KEYSTILE_MASTER_KEY": "sk-ks-cli-master-000000000000"}
    # rpm high enough that polling for the block/unblock to take effect never trips it.
    created = run("keys", "create", "--alias", "cli-key", "--models", "m", "--rpm", "500", env=env)
    assert created.returncode == 0, created.stderr
    raw = created.stdout.strip()
    assert raw.startswith("sk-ks-")
    listed = run("keys", "list", env=env)
    assert "cli-key" in listed.stdout and raw not in listed.stdout
    info = run("keys", "info", "cli-key", env=env)
    assert "rpm_limit" in info.stdout and "500" in info.stdout and raw not in info.stdout

    config = "models:\n  - name: m\n    provider: mock\n"
    with GatewayProcess(config, workdir=tmp_path, env=env, master_key="sk-ks-cli-master-000000000000") as gw:
        def status() -> int:
            return httpx.post(f"{gw.url}/v1/messages", json=anthropic_body(model="m"), headers={"x-api-key": raw}).status_code

        assert status() == 200
        assert run("keys", "block", raw, env=env).returncode == 0
        assert _eventually(lambda: status() == 401)
        assert run("keys", "unblock", raw, env=env).returncode == 0
        assert _eventually(lambda: status() == 200)
        assert run("keys", "delete", "cli-key", env=env).returncode == 0
        assert _eventually(lambda: status() == 401)


def test_keys_create_checks_its_options_as_the_admin_api_does(tmp_path):
    env = {"KEYSTILE_DATABASE_URL": f"sqlite:///{tmp_path / 'keys.db'}"}
    for args in (
        ("--rpm", "0"),  # 0 used to be stored and then read as "no limit"
        ("--tpm", "-5"),
        ("--parallel", "0"),
        ("--budget-duration", "30days"),  # used to be stored, silently making a lifetime budget
        ("--duration", "0"),  # used to create a key that had expired already
        ("--max-budget", "-1"),
    ):
        refused = run("keys", "create", "--alias", "bad", *args, env=env)
        assert refused.returncode == 2 and refused.stdout == "", (args, refused.stdout)
        assert refused.stderr.startswith(f"keystile: {args[0]}: "), refused.stderr
    created = run(
        "keys", "create", "--alias", "good", "--max-budget", "5", "--soft-budget", "4", "--budget-duration", "30d",
        "--rpm", "7", "--tpm", "9000", "--parallel", "3", "--duration", "1d", env=env,
    )
    assert created.returncode == 0, created.stderr
    listed = run("keys", "list", env=env).stdout
    assert "good" in listed and "bad" not in listed
    info = dict(line.split(None, 1) for line in run("keys", "info", "good", env=env).stdout.splitlines() if " " in line)
    assert (info["max_budget"], info["budget_duration"], info["rpm_limit"], info["tpm_limit"], info["max_parallel_requests"]) == (
        "5.0", "30d", "7", "9000", "3",
    )
    assert info["expires"] != "None"


def _eventually(check, timeout: float = 5.0) -> bool:
    """The CLI writes the store directly; a running gateway notices within its 0.5 s revision poll
    (the bound is generous for a loaded CI machine)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_migrate_applies_once_and_store_commands_explain_an_unreachable_database(tmp_path):
    env = {"KEYSTILE_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}
    first = run("migrate", env=env)
    assert first.returncode == 0 and first.stdout.startswith("applied migrations: 1"), first.stdout + first.stderr
    again = run("migrate", env=env)
    assert again.returncode == 0 and again.stdout.strip() == "schema is up to date"

    # Port 1 refuses connections at once; the password must not be repeated back.
    unreachable = {"KEYSTILE_DATABASE_URL": "postgresql://keystile:hunter2-secret@127.0.0.1:1/keystile"}
    for command in (("migrate",), ("keys", "list"), ("keys", "create", "--alias", "x"), ("spend", "report")):
        result = run(*command, env=unreachable)
        assert result.returncode == 1, command
        assert result.stderr.startswith("keystile: cannot reach the database: ") and "Traceback" not in result.stderr, result.stderr
        assert "hunter2" not in result.stderr + result.stdout


# --- the first hour: the banner, the store from any folder, the keys commands (issue 13) ----------

README = Path(__file__).resolve().parents[2] / "README.md"
MOCK_CONFIG = "models:\n  - name: m\n    provider: mock\n  - name: claude-*\n    provider: mock\n"


def _clean_env(**extra: str) -> dict[str, str]:
    """A new terminal: no KEYSTILE_* variables, nothing exported from the shell that started keystile."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **extra}


def _banner(log: str) -> list[str]:
    """The banner's commands, as a user would paste them: indented lines, continuations joined."""
    text = log.split("INFO:", 1)[0]
    commands: list[str] = []
    pending = ""
    for line in text.splitlines():
        if not line.startswith("    "):
            continue
        pending += line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        commands.append(pending)
        pending = ""
    return commands


def _readme_key_generate(url: str) -> str:
    """The README's `/key/generate` curl, verbatim but for the gateway's address."""
    lines = README.read_text().splitlines()
    i = next(i for i, line in enumerate(lines) if "/key/generate -H" in line)
    command = lines[i].rstrip("\\").strip() + " " + lines[i + 1].strip()
    return command.replace("http://127.0.0.1:4000", url)


def test_the_banner_commands_work_when_pasted_into_another_shell(tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed; the banner's commands use it")
    workdir = tmp_path / "gateway"
    elsewhere = tmp_path / "elsewhere"
    workdir.mkdir()
    elsewhere.mkdir()
    first = GatewayProcess(MOCK_CONFIG, workdir=workdir, master_key=None, env={"KEYSTILE_DATABASE_URL": ""})
    first.config_path = Path("keystile.yaml")  # started as `keystile serve --config keystile.yaml` in its folder
    with first:
        log = first.log()
        assert f"config:      {workdir / 'keystile.yaml'}" in log
        assert f"database:    {workdir / 'keystile.db'} (SQLite)" in log  # a relative path, shown absolute
        commands = _banner(log)
        assert [c.split()[0] for c in commands[:4]] == ["export", "export", "curl", f"ANTHROPIC_BASE_URL={first.url}"]
        assert commands[3].endswith(" claude")
        assert len(commands) == 5 and " connect codex " in commands[4]
        script = "\n".join([
            "set -e",
            commands[0],  # export MASTER_KEY=…
            commands[1],  # export KEYSTILE_KEY=$(keystile keys create --config /abs/…)
            commands[2] + " > messages.json",
            commands[3].removesuffix(" claude") + " env > claude-env.txt",  # what Claude Code would be started with
            _readme_key_generate(first.url) + " > generated.json",
            commands[4] + " > connect.txt",
            'echo "$KEYSTILE_KEY" > key.txt',
        ])
        shell = subprocess.run(["bash", "-c", script], cwd=elsewhere, env=_clean_env(), capture_output=True, text=True, timeout=60)
        assert shell.returncode == 0, shell.stderr
        answer = json.loads((elsewhere / "messages.json").read_text())
        assert answer["type"] == "message" and answer["content"][0]["type"] == "text", answer
        virtual_key = (elsewhere / "key.txt").read_text().strip()
        assert virtual_key.startswith("sk-ks-")
        assert f"ANTHROPIC_API_KEY={virtual_key}" in (elsewhere / "claude-env.txt").read_text().splitlines()
        generated = json.loads((elsewhere / "generated.json").read_text())
        assert generated["key"].startswith("sk-ks-") and generated["key_alias"] == "alice", generated
        assert not (elsewhere / "keystile.db").exists()
        connect = (elsewhere / "connect.txt").read_text()  # Codex's setup for this gateway and its config's models
        assert f'base_url = "{first.url}/v1"' in connect and 'model = "' in connect and "<your virtual key>" not in connect

    # After a restart the master key is not shown again; the banner says how to get in without it.
    second = GatewayProcess(MOCK_CONFIG, workdir=workdir, master_key=None, env={"KEYSTILE_DATABASE_URL": ""}, port=first.port)
    with second:
        log = second.log().split("generated on an earlier first start", 1)[1]
        commands = _banner(log)
    assert "KEYSTILE_MASTER_KEY" in commands[1] and "serve" in commands[1], commands
    chosen = subprocess.run(["bash", "-c", f'set -e; {commands[0]}; echo "$MASTER_KEY"'], cwd=elsewhere, env=_clean_env(),
                            capture_output=True, text=True, timeout=30)
    master = chosen.stdout.strip()
    assert chosen.returncode == 0 and master.startswith("sk-ks-") and len(master) > 30, chosen.stderr
    restarted = subprocess.Popen(["bash", "-c", commands[1]], cwd=elsewhere, env=_clean_env(MASTER_KEY=master),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert _eventually(lambda: _ready(second.url), timeout=20)
        listed = httpx.get(f"{second.url}/key/list", headers={"authorization": f"Bearer {master}"})
        assert listed.status_code == 200 and listed.json()["total_count"] == 2, listed.text
    finally:
        os.killpg(restarted.pid, signal.SIGTERM)
        restarted.wait(20)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/readiness", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_store_is_found_from_any_folder(tmp_path):
    home, a, b = tmp_path / "config-dir", tmp_path / "a", tmp_path / "b"
    for folder in (home, a, b):
        folder.mkdir()
    config = home / "keystile.yaml"
    config.write_text("database_url: sqlite:///keystile.db\n" + MOCK_CONFIG)
    env = {"KEYSTILE_DATABASE_URL": ""}
    created = run("keys", "create", "--alias", "from-a", "--config", str(config), env=env, cwd=a)
    assert created.returncode == 0, created.stderr
    listed = run("keys", "list", "--config", str(config), env=env, cwd=b)
    assert "from-a" in listed.stdout, listed.stdout + listed.stderr
    assert (home / "keystile.db").exists() and not (a / "keystile.db").exists() and not (b / "keystile.db").exists()

    # The built-in default config keeps its database in the data folder, whatever the folder.
    data = {"KEYSTILE_DATABASE_URL": "", "XDG_DATA_HOME": str(tmp_path / "data")}
    assert run("keys", "create", "--alias", "default-config", env=data, cwd=a).returncode == 0
    assert "default-config" in run("keys", "list", env=data, cwd=b).stdout
    assert (tmp_path / "data" / "keystile" / "keystile.db").exists()


def test_keys_update_regenerate_and_a_duplicate_alias(tmp_path):
    env = {"KEYSTILE_DATABASE_URL": f"sqlite:///{tmp_path / 'keys.db'}"}
    first = run("keys", "create", "--alias", "dev", "--rpm", "100", env=env)
    assert first.returncode == 0, first.stderr
    duplicate = run("keys", "create", "--alias", "dev", env=env)
    assert duplicate.returncode == 1 and duplicate.stdout == ""
    assert duplicate.stderr.count("\n") == 1 and "'dev' is already used" in duplicate.stderr, duplicate.stderr
    other = run("keys", "create", "--alias", "other", env=env)
    assert run("keys", "update", "other", "--alias", "dev", env=env).returncode == 1

    updated = run("keys", "update", "dev", "--rpm", "7", "--max-budget", "2.5", "--alias", "dev2", env=env)
    assert updated.returncode == 0, updated.stderr
    info = dict(line.split(None, 1) for line in run("keys", "info", "dev2", env=env).stdout.splitlines() if " " in line)
    assert (info["rpm_limit"], info["max_budget"], info["expires"]) == ("7", "2.5", "None")
    assert run("keys", "update", "dev2", "--max-budget", "none", "--duration", "1d", env=env).returncode == 0
    info = dict(line.split(None, 1) for line in run("keys", "info", "dev2", env=env).stdout.splitlines() if " " in line)
    assert info["max_budget"] == "None" and info["expires"] != "None"
    refused = run("keys", "update", "dev2", "--tpm", "0", env=env)
    assert refused.returncode == 2 and refused.stderr.startswith("keystile: --tpm: "), refused.stderr
    assert run("keys", "update", "dev2", env=env).returncode == 2  # nothing to change

    old = first.stdout.strip()
    config = "models:\n  - name: m\n    provider: mock\n"
    with GatewayProcess(config, workdir=tmp_path, env=env) as gw:
        def status(key: str) -> int:
            return httpx.post(f"{gw.url}/v1/messages", json=anthropic_body(model="m"), headers={"x-api-key": key}).status_code

        assert status(old) == 200
        regenerated = run("keys", "regenerate", "dev2", env=env)
        assert regenerated.returncode == 0, regenerated.stderr
        new = regenerated.stdout.strip()
        assert new.startswith("sk-ks-") and new != old
        assert _eventually(lambda: status(old) == 401)
        assert status(new) == 200
        assert status(other.stdout.strip()) == 200
    info = dict(line.split(None, 1) for line in run("keys", "info", new, env=env).stdout.splitlines() if " " in line)
    assert info["key_alias"] == "dev2" and info["rpm_limit"] == "7"  # the same key, a new secret


def test_every_option_has_help():
    from keystile.cli import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{path} {name}")
            elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)) and not action.help:
                missing.append(f"{path} {action.option_strings or action.dest}")

    walk(build_parser(), "keystile")
    assert missing == []


def test_spend_report_names_the_master_key_and_401s_show_short_keys_recognisably(tmp_path):
    env = {"KEYSTILE_DATABASE_URL": f"sqlite:///{tmp_path / 'keystile.db'}"}
    with GatewayProcess("models:\n  - name: m\n    provider: mock\n", workdir=tmp_path, env=env) as gw:
        key = gw.create_key(key_alias="alice")
        for credential in (gw.master_key, key):
            response = httpx.post(f"{gw.url}/v1/messages", json=anthropic_body(model="m"), headers={"x-api-key": credential})
            assert response.status_code == 200
        refused = httpx.post(f"{gw.url}/v1/messages", json=anthropic_body(model="m"), headers={"authorization": "Bearer wrong-key"})
        assert refused.status_code == 401
        message = refused.json()["error"]["message"]
        assert "wr…ey" in message and "wrong-key" not in message, message
    report = run("spend", "report", env=env)
    assert report.returncode == 0, report.stderr
    rows = report.stdout.splitlines()[2:]
    assert any(row.startswith("master key ") for row in rows), report.stdout
    assert any(row.startswith("alice (") for row in rows), report.stdout
