"""``keystile import litellm`` against LiteLLM's real schema, then the raw LiteLLM keys against keystile.

LiteLLM's database is built the way LiteLLM builds it: every migration that the
``litellm-proxy-extras`` package ships, applied in name order to an empty database on the
test PostgreSQL. Rows are inserted as LiteLLM writes them (``token`` is the SHA-256 hex of
the raw ``sk-…`` key, ``key_name`` its ``sk-...abcd`` abbreviation, model limits inside
``metadata``). The real ``keystile import litellm`` command copies them; a real keystile, on
PostgreSQL and on SQLite, is then called with the raw keys through the official SDKs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import anthropic
import openai
import pytest

from tests.integration.harness import KEYSTILE, GatewayProcess, anthropic_body, standard_config
from tests.services import create_database, drop_database

pytestmark = pytest.mark.services

asyncpg = pytest.importorskip("asyncpg")
litellm_proxy_extras = pytest.importorskip("litellm_proxy_extras")

MIGRATIONS = Path(litellm_proxy_extras.__file__).parent / "migrations"

# Raw keys as LiteLLM hands them out ("sk-" + url-safe random); only their hashes go in its database.
ALICE = "sk-LiteLLM-alice-Xq3v9TzL0pWm"
BOB = "sk-LiteLLM-bob-7hGfR2kPqZsA"
TEAM_KEY = "sk-LiteLLM-team-Jk8sW1nBvC4e"
BLOCKED = "sk-LiteLLM-blocked-Lm5tYu7Io9Pa"
EXPIRED = "sk-LiteLLM-expired-Qw2eRt4Yu6Io"
SPENT = "sk-LiteLLM-spent-As3dFg5Hj7Kl"
CAROL = "sk-LiteLLM-carol-Zx9cVb7Nm5Qw"
WORKING = {"alice-laptop": ALICE, "bob-ci": BOB, "eng-shared": TEAM_KEY, "carol": CAROL}

NOW = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)  # Prisma writes UTC without a zone
ALICE_EXPIRES = NOW + timedelta(days=30)
ALICE_RESET = NOW + timedelta(days=10)


def sha256(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def abbreviation(raw: str) -> str:
    return f"sk-...{raw[-4:]}"  # LiteLLM's key_name


# --- LiteLLM's database, as LiteLLM builds and fills it -------------------------------------------


async def _apply_migrations(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        applied = 0
        for directory in sorted(p for p in MIGRATIONS.iterdir() if p.is_dir()):
            await conn.execute((directory / "migration.sql").read_text())
            applied += 1
        return applied
    finally:
        await conn.close()


async def _fill(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            'INSERT INTO "LiteLLM_BudgetTable" (budget_id, soft_budget, tpd_limit, created_by, updated_by) '
            "VALUES ('budget-alice', 40.0, 2000000, 'admin', 'admin')"
        )
        members = [
            {"role": "admin", "user_id": "alice", "user_email": "alice@example.com"},
            {"role": "user", "user_id": "bob", "user_email": None},
            {"role": "user", "user_id": None, "user_email": "carol@example.com"},  # added by email
        ]
        await conn.execute(
            'INSERT INTO "LiteLLM_TeamTable" (team_id, team_alias, admins, members, members_with_roles, metadata, '
            "max_budget, spend, models, rpm_limit, budget_duration, budget_reset_at, blocked, tpd_limit) "
            "VALUES ('team-eng', 'engineering', ARRAY['alice'], ARRAY['alice','bob'], $1::jsonb, '{}'::jsonb, "
            "500.0, 40.0, ARRAY['claude-test','gpt-test'], 1000, '30d', $2, false, 5000000)",
            json.dumps(members), ALICE_RESET,
        )
        users = [
            ("alice", "alice@example.com", 100.0, 20.0, ["team-eng"], "internal_user", "1mo"),
            ("bob", "bob@example.com", None, 3.25, ["team-eng"], "internal_user", None),
            ("carol", "carol@example.com", None, 0.0, [], "internal_user", None),
            ("root-admin", "admin@example.com", None, 0.0, [], "proxy_admin", None),
        ]
        for user_id, email, budget, spend, teams, role, duration in users:
            await conn.execute(
                'INSERT INTO "LiteLLM_UserTable" (user_id, user_email, max_budget, spend, teams, user_role, models, '
                "metadata, budget_duration) VALUES ($1, $2, $3, $4, $5, $6, ARRAY[]::text[], '{}'::jsonb, $7)",
                user_id, email, budget, spend, teams, role, duration,
            )
        keys: list[dict[str, Any]] = [
            dict(raw=ALICE, alias="alice-laptop", user="alice", team=None, models=["claude-test", "gpt-test"],
                 max_budget=50.0, spend=12.5, rpm=60, tpm=100000, parallel=4, duration="30d", reset=ALICE_RESET,
                 expires=ALICE_EXPIRES, budget_id="budget-alice",
                 metadata={"model_rpm_limit": {"claude-test": 30}, "model_tpm_limit": {"gpt-test": 5000}, "owner": "alice"}),
            dict(raw=BOB, alias="bob-ci", user="bob", spend=3.25, tpd=100000),
            dict(raw=TEAM_KEY, alias="eng-shared", user=None, team="team-eng", models=["all-team-models"]),
            dict(raw=CAROL, alias="carol", user="carol", models=["all-proxy-models"]),
            dict(raw=BLOCKED, alias="blocked-one", user="bob", blocked=True),
            dict(raw=EXPIRED, alias="expired-one", user="bob", expires=NOW - timedelta(days=1)),
            dict(raw=SPENT, alias="spent-one", user="bob", max_budget=1.0, spend=1.5),
        ]
        for k in keys:
            await conn.execute(
                'INSERT INTO "LiteLLM_VerificationToken" (token, key_name, key_alias, spend, expires, models, user_id, '
                "team_id, max_parallel_requests, metadata, blocked, tpm_limit, rpm_limit, max_budget, budget_duration, "
                "budget_reset_at, budget_id, tpd_limit, created_by, updated_by) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, $13, $14, $15, $16, $17, $18, 'admin', 'admin')",
                sha256(k["raw"]), abbreviation(k["raw"]), k["alias"], k.get("spend", 0.0), k.get("expires"),
                k.get("models", []), k.get("user"), k.get("team"), k.get("parallel"), json.dumps(k.get("metadata", {})),
                k.get("blocked"), k.get("tpm"), k.get("rpm"), k.get("max_budget"), k.get("duration"), k.get("reset"),
                k.get("budget_id"), k.get("tpd"),
            )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def litellm_db(services) -> Iterator[str]:
    url = create_database(services.postgres, "litellm")
    try:
        applied = asyncio.run(_apply_migrations(url))
        assert applied >= 200  # LiteLLM's whole history, not a hand-made subset
        asyncio.run(_fill(url))
        yield url
    finally:
        drop_database(services.postgres, url)


def run_import(tmp_path: Path, store_url: str, *args: str) -> subprocess.CompletedProcess:
    config = tmp_path / "keystile.yaml"
    if not config.exists():
        config.write_text("models:\n  - {name: m, provider: mock}\n")
    env = {**os.environ, "KEYSTILE_DATABASE_URL": store_url}
    env.pop("DATABASE_URL", None)
    return subprocess.run([KEYSTILE, "import", "litellm", "--config", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=120)


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        return {r[0] for r in await conn.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    finally:
        await conn.close()


async def _team_roles(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        return {r[0]: r[1] for r in await conn.fetch("SELECT user_id, role FROM team_members WHERE team_id = 'team-eng'")}
    finally:
        await conn.close()


# --- the tests ---------------------------------------------------------------------------------------


def test_import_into_postgresql_then_every_litellm_key_works_unchanged(tmp_path, services, litellm_db, upstream):
    store = create_database(services.postgres, "ks_import")
    try:
        # --dry-run says what would come over and writes nothing, not even keystile's schema.
        dry = run_import(tmp_path, store, "--database-url", litellm_db, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "1 team, 4 users, 7 keys" in dry.stdout.splitlines()[0]
        assert f"would create key sk-…{ALICE[-4:]} (alice-laptop)" in dry.stdout
        assert "would create team engineering (team-eng), 3 member(s)" in dry.stdout
        assert "dry run, nothing written: would create 1 team, 4 users, 7 keys" in dry.stdout
        assert "keys" not in asyncio.run(_tables(store))

        done = run_import(tmp_path, store, "--database-url", litellm_db)
        assert done.returncode == 0, done.stderr
        out = done.stdout
        for alias, raw in WORKING.items():
            assert f"created key sk-…{raw[-4:]} ({alias})" in out
        assert f"created key sk-…{BLOCKED[-4:]} (blocked-one) — blocked" in out
        assert f"created key sk-…{EXPIRED[-4:]} (expired-one) — expired" in out
        assert "created 1 team, 4 users, 7 keys" in out
        # What keystile cannot carry over is named, one line each.
        unmapped = out.split("not mapped", 1)[1].splitlines()[1:-1]
        assert any("bob-ci" in line and "tpd_limit 100000" in line and "daily token limit" in line for line in unmapped)
        assert any("alice-laptop" in line and "tpd_limit 2000000" in line for line in unmapped)  # from its budget row
        assert any("team engineering" in line and "tpd_limit 5000000" in line for line in unmapped)
        assert any("user root-admin" in line and "proxy_admin" in line for line in unmapped)
        assert len(unmapped) == 4, unmapped
        for raw in (ALICE, BOB, TEAM_KEY, BLOCKED, EXPIRED, SPENT, CAROL):
            assert raw not in out + done.stderr

        # Twice changes nothing, and says so.
        again = run_import(tmp_path, store, "--database-url", litellm_db)
        assert again.returncode == 0, again.stderr
        assert "created" not in again.stdout.replace("nothing to import", "")
        assert "nothing to import: 1 team, 4 users, 7 keys already in keystile and unchanged" in again.stdout

        assert asyncio.run(_team_roles(store)) == {"alice": "admin", "bob": "user", "carol": "user"}

        with GatewayProcess(standard_config(upstream.url), env={"KEYSTILE_DATABASE_URL": store}, workdir=tmp_path) as gw:
            info = gw.admin("GET", "/key/info", params={"key": ALICE}).json()["info"]
            assert info["key_alias"] == "alice-laptop" and info["token"] == sha256(ALICE)
            assert (info["max_budget"], info["soft_budget"], info["spend"], info["budget_duration"]) == (50.0, 40.0, 12.5, "30d")
            assert info["budget_reset_at"] == ALICE_RESET.strftime("%Y-%m-%dT%H:%M:%SZ")
            assert (info["rpm_limit"], info["tpm_limit"], info["max_parallel_requests"]) == (60, 100000, 4)
            assert (info["model_rpm_limit"], info["model_tpm_limit"]) == ({"claude-test": 30}, {"gpt-test": 5000})
            assert info["expires"] == ALICE_EXPIRES.strftime("%Y-%m-%dT%H:%M:%SZ")
            assert (info["user_id"], info["models"], info["metadata"]) == ("alice", ["claude-test", "gpt-test"], {"owner": "alice"})
            user = gw.admin("GET", "/user/info", params={"user_id": "alice"}).json()["user_info"]
            assert (user["max_budget"], user["spend"], user["user_email"], user["budget_duration"]) == (100.0, 20.0, "alice@example.com", "1mo")
            team = gw.admin("GET", "/team/info", params={"team_id": "team-eng"}).json()["team_info"]
            assert (team["team_alias"], team["max_budget"], team["spend"], team["rpm_limit"]) == ("engineering", 500.0, 40.0, 1000)
            assert sorted(team["members"]) == ["alice", "bob", "carol"]

            # Every LiteLLM key authenticates unchanged, through both SDKs.
            for alias, raw in WORKING.items():
                with anthropic.Anthropic(base_url=gw.url, api_key=raw, max_retries=0) as claude:
                    assert claude.messages.create(**anthropic_body(model="claude-test")).content[0].text, alias
                with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=raw, max_retries=0) as gpt:
                    reply = gpt.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
                    assert reply.choices[0].message.content, alias
            with anthropic.Anthropic(base_url=gw.url, api_key=BLOCKED, max_retries=0) as claude:
                with pytest.raises(anthropic.AuthenticationError, match="blocked"):
                    claude.messages.create(**anthropic_body(model="claude-test"))
            with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=EXPIRED, max_retries=0) as gpt:
                with pytest.raises(openai.AuthenticationError, match="expired"):
                    gpt.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
            # Spend came along: this key had already used more than its budget in LiteLLM.
            with anthropic.Anthropic(base_url=gw.url, api_key=SPENT, max_retries=0) as claude:
                with pytest.raises(anthropic.BadRequestError, match="(?i)budget"):
                    claude.messages.create(**anthropic_body(model="claude-test"))
            # "all-team-models": the team's list applies to the team's key.
            with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=TEAM_KEY, max_retries=0) as gpt:
                with pytest.raises(openai.PermissionDeniedError):
                    gpt.chat.completions.create(model="mock-builtin", messages=[{"role": "user", "content": "hi"}])
            assert ALICE not in gw.log() and sha256(ALICE) not in gw.log()
    finally:
        drop_database(services.postgres, store)


def test_import_into_sqlite_and_serve_from_it(tmp_path, litellm_db, upstream):
    store = f"sqlite:///{tmp_path / 'keystile.db'}"
    done = run_import(tmp_path, store, "--database-url", litellm_db)
    assert done.returncode == 0, done.stderr
    assert "created 1 team, 4 users, 7 keys" in done.stdout
    assert "nothing to import" in run_import(tmp_path, store, "--database-url", litellm_db).stdout
    with GatewayProcess(standard_config(upstream.url), env={"KEYSTILE_DATABASE_URL": store}, workdir=tmp_path) as gw:
        info = gw.admin("GET", "/key/info", params={"key": BOB}).json()["info"]
        assert (info["user_id"], info["spend"], info["key_alias"]) == ("bob", 3.25, "bob-ci")
        with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=ALICE, max_retries=0) as gpt:
            assert gpt.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}]).choices
        with anthropic.Anthropic(base_url=gw.url, api_key=BOB, max_retries=0) as claude:
            assert claude.messages.create(**anthropic_body(model="claude-test")).content
        with anthropic.Anthropic(base_url=gw.url, api_key=BLOCKED, max_retries=0) as claude:
            with pytest.raises(anthropic.AuthenticationError, match="blocked"):
                claude.messages.create(**anthropic_body(model="claude-test"))


def test_a_change_in_litellm_is_reported_and_taken_only_with_update(tmp_path, services, litellm_db):
    store = f"sqlite:///{tmp_path / 'keystile.db'}"
    assert run_import(tmp_path, store, "--database-url", litellm_db).returncode == 0

    async def raise_bobs_limit(value: int | None) -> None:
        conn = await asyncpg.connect(litellm_db)
        try:
            await conn.execute('UPDATE "LiteLLM_VerificationToken" SET rpm_limit = $1 WHERE key_alias = $2', value, "bob-ci")
        finally:
            await conn.close()

    asyncio.run(raise_bobs_limit(77))
    try:
        plain = run_import(tmp_path, store, "--database-url", litellm_db)
        assert "(bob-ci) is already in keystile and differs from LiteLLM (rpm_limit null → 77); left as it is" in plain.stdout
        assert "1 key differ from LiteLLM" in plain.stdout
        updated = run_import(tmp_path, store, "--database-url", litellm_db, "--update")
        assert "updated key" in updated.stdout and "rpm_limit null → 77" in updated.stdout
        assert "nothing to import" in run_import(tmp_path, store, "--database-url", litellm_db).stdout
    finally:
        asyncio.run(raise_bobs_limit(None))


def test_not_a_litellm_database_and_no_database_are_one_line_each(tmp_path, services):
    store = f"sqlite:///{tmp_path / 'keystile.db'}"
    empty = create_database(services.postgres, "not_litellm")
    try:
        result = run_import(tmp_path, store, "--database-url", empty)
        assert result.returncode == 1 and "not a LiteLLM proxy database" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    finally:
        drop_database(services.postgres, empty)
    missing = run_import(tmp_path, store)
    assert missing.returncode == 2 and "--database-url" in missing.stderr
    password = "s3cret-pw"
    unreachable = run_import(tmp_path, store, "--database-url", f"postgresql://u:{password}@127.0.0.1:1/x")
    assert unreachable.returncode == 1 and "cannot connect" in unreachable.stderr and password not in unreachable.stderr
