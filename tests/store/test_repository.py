"""The repository on both drivers: every statement runs the same on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

import pytest

from keystile.store.database import IntegrityViolation, open_database
from keystile.store.migrations import SchemaTooNew, available_migrations, current_version, latest_version, migrate
from keystile.store.postgres import to_dollar_params
from keystile.store.records import KeyRecord, SpendLogRow, TeamMember, TeamRecord, UserRecord
from keystile.store.repository import SpendBatch, Store
from tests.services import create_database, drop_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Any:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    server = request.getfixturevalue("services").postgres
    url = create_database(server, "ks_store")
    yield url
    drop_database(server, url)


def run(database_url: str, body: Callable[[Store], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        store = await Store.open(database_url)
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def spend_row(request_id: str, key_id: str, cost: float, ts: float | None = None, **extra: Any) -> SpendLogRow:
    fields = dict(
        request_id=request_id, ts=ts if ts is not None else time.time(), key_id=key_id, key_alias="alias",
        user_id="u1", team_id=None, model="claude-test", model_group="claude-test", deployment="claude-test#0",
        provider="anthropic", input_tokens=10, output_tokens=20, cache_read_tokens=3, cache_write_tokens=0,
        cost=cost, status=200, latency_ms=12.5, stream=True, attempts=2,
    )
    fields.update(extra)
    return SpendLogRow(**fields)


def test_placeholders_become_numbered_outside_quotes():
    assert to_dollar_params("SELECT a FROM t WHERE b = ? AND c IN (?, ?)") == "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"
    assert to_dollar_params("SELECT '?' , ? FROM t") == "SELECT '?' , $1 FROM t"


def test_meta_and_revision(database_url):
    async def body(store: Store) -> None:
        assert await store.get_meta("x") is None
        assert await store.insert_meta_if_absent("x", "1") is True
        assert await store.insert_meta_if_absent("x", "2") is False
        await store.set_meta("x", "3")
        assert await store.get_meta("x") == "3"
        before = await store.auth_revision()
        await store.insert_key(KeyRecord(token_hash="h1"))
        await store.update_key("h1", {"blocked": True})
        assert await store.auth_revision() == before + 2
        await store.ping()

    run(database_url, body)


def test_keys_round_trip_with_every_field_type(database_url):
    async def body(store: Store) -> None:
        record = KeyRecord(
            token_hash="h1", key_name="sk-ks-…abcd", key_alias="laptop", models=["a", "b"], max_budget=10.0,
            soft_budget=5.0, budget_duration="30d", budget_reset_at=time.time() + 100, rpm_limit=10, tpm_limit=1000,
            max_parallel_requests=2, model_rpm_limit={"a": 3}, model_tpm_limit={"a": 300}, expires_at=None,
            blocked=False, metadata={"owner": "alice", "n": 1}, user_id="u1", team_id=None,
        )
        await store.insert_key(record)
        got = await store.get_key("h1")
        assert got == record
        assert isinstance(got.blocked, bool) and isinstance(got.rpm_limit, int) and isinstance(got.spend, float)
        updated = await store.update_key("h1", {"blocked": True, "spend": 2.5, "models": [], "rpm_limit": None, "nope": 1})
        assert updated.blocked is True and updated.spend == 2.5 and updated.models == [] and updated.rpm_limit is None
        assert (await store.find_key_by_alias("laptop")).token_hash == "h1"
        with pytest.raises(IntegrityViolation):
            await store.insert_key(KeyRecord(token_hash="h2", key_alias="laptop"))
        with pytest.raises(IntegrityViolation):
            await store.insert_key(KeyRecord(token_hash="h1"))
        await store.insert_key(KeyRecord(token_hash="h3", user_id="u1"))
        assert [k.token_hash for k in await store.list_keys(user_id="u1")] == ["h1", "h3"]
        assert [k.token_hash for k in await store.list_keys(limit=1, offset=1)] == ["h3"]
        assert await store.count_keys() == 2
        assert await store.delete_keys(["h3", "h3", "missing"]) == ["h3"]
        assert await store.delete_keys([]) == []

    run(database_url, body)


def test_rekey_gives_a_new_secret_and_keeps_the_key_id_its_spend_and_logs(database_url):
    async def body(store: Store) -> None:
        await store.insert_key(KeyRecord(token_hash="old", key_name="a", max_budget=3.0))
        assert (await store.get_key("old")).key_id == "old"  # a key's id is the hash of its first secret
        await store.apply_spend(SpendBatch({("key", "old"): 1.0}, {}, [spend_row("r1", "old", 1.0)]))
        moved = await store.rekey("old", "new", "b", {"max_budget": 4.0, "key_id": "hijack"})
        assert moved is not None and moved.token_hash == "new" and moved.key_name == "b" and moved.max_budget == 4.0
        assert moved.key_id == "old" and moved.spend == 1.0
        assert await store.get_key("old") is None
        # spend charged under the id after the new secret was set (a request in flight) lands on the key
        await store.apply_spend(SpendBatch({("key", "old"): 0.5}, {}, [spend_row("r2", "old", 0.5)]))
        assert (await store.get_key("new")).spend == 1.5
        assert sorted(r.request_id for r in await store.spend_logs(key_id="old")) == ["r1", "r2"]
        assert (await store.get_key_by_id("old")).token_hash == "new"
        assert await store.rekey("missing", "x", "y", {}) is None
        # a new key whose secret hashes to a regenerated key's id gets an id of its own
        await store.insert_key(KeyRecord(token_hash="old", key_name="c"))
        again = await store.get_key("old")
        assert again.key_id not in ("old", "") and len(again.key_id) == 64

    run(database_url, body)


def test_users_teams_and_members(database_url):
    async def body(store: Store) -> None:
        await store.insert_user(UserRecord(user_id="u1", user_email="a@example.com", max_budget=5.0))
        await store.insert_user(UserRecord(user_id="u2"))
        await store.insert_team(TeamRecord(team_id="t1", members=["u1"], blocked=True))
        await store.add_team_member("t1", "u2", "admin")
        await store.add_team_member("t1", "u2", "user")  # upsert
        team = await store.get_team("t1")
        assert team.members == ["u1", "u2"] and team.blocked is True
        assert [(m.user_id, m.role, m.user_email) for m in team.members_with_roles] == [("u1", "user", "a@example.com"), ("u2", "user", None)]
        await store.insert_team(TeamRecord(team_id="t2", members_with_roles=[TeamMember("u1", "admin"), TeamMember("u3", "user")]))
        assert [(m.user_id, m.role) for m in (await store.get_team("t2")).members_with_roles] == [("u1", "admin"), ("u3", "user")]
        assert [u.user_id for u in await store.find_users_by_email("a@example.com")] == ["u1"]
        await store.delete_teams(["t2"])
        assert [t.members for t in await store.list_teams()] == [["u1", "u2"]]
        assert await store.remove_team_member("t1", "u2") is True
        assert await store.remove_team_member("t1", "u2") is False
        assert (await store.update_user("u1", {"max_budget": 6.0})).max_budget == 6.0
        assert [u.user_id for u in await store.list_users()] == ["u1", "u2"]
        await store.insert_key(KeyRecord(token_hash="k1", user_id="u1"))
        await store.insert_key(KeyRecord(token_hash="k2", team_id="t1"))
        assert await store.delete_users(["u1"]) == ["u1"]
        assert await store.get_key("k1") is None
        assert (await store.get_team("t1")).members == []
        assert await store.delete_teams(["t1", "nope"]) == ["t1"]
        assert await store.get_key("k2") is None
        assert await store.delete_users([]) == [] and await store.delete_teams([]) == []

    run(database_url, body)


def test_apply_spend_returns_totals_and_resets_a_period_once(database_url):
    async def body(store: Store) -> None:
        await store.insert_key(KeyRecord(token_hash="k", budget_reset_at=100.0, budget_duration="1d"))
        await store.insert_user(UserRecord(user_id="u1"))
        totals = await store.apply_spend(
            SpendBatch({("key", "k"): 0.25, ("user", "u1"): 0.5}, {}, [spend_row("r1", "k", 0.25), spend_row("r2", "k", 0.5)])
        )
        assert totals == {("key", "k"): (0.25, 100.0), ("user", "u1"): (0.5, None)}
        # the same rows again (a retried batch) are not logged twice
        await store.apply_spend(SpendBatch({}, {}, [spend_row("r1", "k", 0.25)]))
        assert len(await store.spend_logs(key_id="k")) == 2
        # closing the period: spend restarts; a second process closing the same period does nothing
        totals = await store.apply_spend(SpendBatch({("key", "k"): 0.1}, {("key", "k"): (100.0, 86500.0)}, []))
        assert totals[("key", "k")] == (pytest.approx(0.1), 86500.0)
        totals = await store.apply_spend(SpendBatch({("key", "k"): 0.1}, {("key", "k"): (100.0, 86500.0)}, []))
        assert totals[("key", "k")] == (pytest.approx(0.2), 86500.0)
        assert await store.apply_spend(SpendBatch({}, {}, [])) == {}
        assert await store.apply_spend(SpendBatch({("key", "missing"): 1.0}, {}, [])) == {}

    run(database_url, body)


def test_spend_logs_filters_report_and_prune(database_url):
    async def body(store: Store) -> None:
        now = time.time()
        rows = [
            spend_row("a", "k1", 1.0, ts=now - 10),
            spend_row("b", "k1", 2.0, ts=now - 5, model="gpt-test"),
            spend_row("c", "k2", 0.5, ts=now - 1000, user_id="u2", team_id="t1", stream=False),
        ]
        await store.apply_spend(SpendBatch({}, {}, rows))
        got = await store.spend_logs(key_id="k1")
        assert [r.request_id for r in got] == ["b", "a"]
        assert got[0] == rows[1] and got[0].stream is True
        assert [r.request_id for r in await store.spend_logs(model="gpt-test")] == ["b"]
        assert [r.request_id for r in await store.spend_logs(user_id="u2", team_id="t1")] == ["c"]
        assert [r.request_id for r in await store.spend_logs(start=now - 100, end=now - 6)] == ["a"]
        assert len(await store.spend_logs(limit=1)) == 1
        report = await store.spend_report("key")
        assert report[0][:5] == ("k1", 2, 26, 40, 3.0) and report[0][5] == "alias"
        assert all(type(v) in (int, float, str) for row in report for v in row if v is not None)
        assert [row[0] for row in await store.spend_report("model", start=now - 100)] == ["gpt-test", "claude-test"]
        assert await store.prune_spend_logs(now - 100) == 1
        assert [r.request_id for r in await store.spend_logs()] == ["b", "a"]

    run(database_url, body)


def test_migrations_are_versioned_idempotent_and_refuse_a_newer_schema(database_url):
    async def main() -> None:
        db = await open_database(database_url)
        try:
            assert await migrate(db) == list(range(1, latest_version() + 1))
            assert await migrate(db) == []
            assert await current_version(db) == latest_version()
            await db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", (latest_version() + 1, "future", 0.0)
            )
            with pytest.raises(SchemaTooNew):
                await migrate(db)
        finally:
            await db.close()

    asyncio.run(main())


@pytest.mark.services
def test_instances_starting_together_migrate_once(services):
    url = create_database(services.postgres, "ks_migrate")

    async def one() -> list[int]:
        db = await open_database(url)
        try:
            return await migrate(db)
        finally:
            await db.close()

    async def main() -> list[list[int]]:
        return await asyncio.gather(*(one() for _ in range(4)))

    try:
        applied = asyncio.run(main())
        assert sorted(map(len, applied)) == [0, 0, 0, latest_version()]
    finally:
        drop_database(services.postgres, url)


def test_an_unreachable_postgresql_is_database_unavailable():
    from keystile.store.database import DatabaseUnavailable
    from tests.services import free_port

    with pytest.raises(DatabaseUnavailable):
        asyncio.run(open_database(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"))


def test_spend_rows_the_database_would_refuse_are_made_to_fit(database_url):
    """What a client or an upstream can put in a row: NULs, lone surrogates, megabytes, numbers past BIGINT."""

    async def body(store: Store) -> None:
        await store.insert_key(KeyRecord(token_hash="k"))
        hostile = spend_row(
            "r1", "k", float("nan"), model="x\u0000" + "m" * 5_000_000, key_alias="a\ud800b", input_tokens=2**70,
            output_tokens=2**63, cache_read_tokens=-5, latency_ms=float("inf"), request_content="p\u0000q",
        )
        await store.apply_spend(SpendBatch({("key", "k"): float("inf")}, {}, [hostile, spend_row("r2", "k", 0.5)]))
        rows = {r.request_id: r for r in await store.spend_logs(key_id="k")}
        got = rows["r1"]
        assert got.model == "x" + "m" * 255 and got.key_alias == "ab" and got.request_content == "pq"
        assert (got.input_tokens, got.output_tokens, got.cache_read_tokens) == (2**63 - 1, 2**63 - 1, 0)
        assert got.cost == 0.0 and got.latency_ms == 1.7976931348623157e308
        assert rows["r2"].cost == 0.5
        assert (await store.get_key("k")).spend == 1e15  # an absurd increment is capped, not refused
        assert await store.spend_logs(model="x\u0000") == []  # a filter no stored text can equal

    run(database_url, body)


def test_migration_2_applies_to_a_database_made_by_version_1(database_url):
    """keys get their stable id (their hash), log rows written under that hash stay under the key."""

    async def main() -> None:
        db = await open_database(database_url)
        try:
            number, name, sql = available_migrations()[0]
            assert number == 1
            await db.execute(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
            await db.run_script(sql + f";\nINSERT INTO schema_migrations (version, name, applied_at) VALUES (1, '{name}', 0)")
            await db.execute("INSERT INTO keys (token_hash, key_name, spend, created_at, updated_at) VALUES ('h1', 'n', 2.5, 1, 1)")
            await db.execute(
                "INSERT INTO spend_logs (request_id, ts, token_hash, model, status, cost) VALUES ('old-row', 1, 'h1', 'claude-test', 200, 2.5)"
            )
            assert await migrate(db) == list(range(2, latest_version() + 1))
            store = Store(db)
            key = await store.get_key("h1")
            assert key is not None and key.key_id == "h1" and key.spend == 2.5
            [old] = await store.spend_logs(key_id="h1")
            assert (old.request_id, old.cost, old.requests) == ("old-row", 2.5, 1)
            await store.rekey("h1", "h2", "n2", {})
            await store.apply_spend(SpendBatch({("key", "h1"): 0.5}, {}, [spend_row("new-row", "h1", 0.5)]))
            assert (await store.get_key("h2")).spend == 3.0
            assert sorted(r.request_id for r in await store.spend_logs(key_id="h1")) == ["new-row", "old-row"]
        finally:
            await db.close()

    asyncio.run(main())
