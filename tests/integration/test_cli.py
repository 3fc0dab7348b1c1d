"""The ``keystile`` command: config check with file:line, keys on the store, first-start master key."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import subprocess
import textwrap

import httpx

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
