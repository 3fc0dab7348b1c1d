"""SpendWriter: batches to a real SQLite store, keeps everything when a write fails, prunes by retention."""

from __future__ import annotations

import asyncio
import time

import pytest

from keystile.accounting.spend import SpendWriter, is_outage
from keystile.config.model import SpendSettings
from keystile.limits.budgets import Ledger
from keystile.metrics import Metrics
from keystile.store.database import DatabaseUnavailable, IntegrityViolation
from keystile.store.records import KeyRecord, SpendLogRow, TeamRecord
from keystile.store.repository import Store

T0 = 1_800_000_000.0
KEY = ("key", "a" * 64)
TEAM = ("team", "t")


def row(request_id: str, ts: float, cost: float = 0.01) -> SpendLogRow:
    return SpendLogRow(
        request_id=request_id, ts=ts, key_id=KEY[1], key_alias=None, user_id=None, team_id="t", model="m",
        model_group="m", deployment="m#0", provider="mock", input_tokens=10, output_tokens=5, cache_read_tokens=0,
        cache_write_tokens=0, cost=cost, status=200, latency_ms=1.0, stream=False,
    )


async def open_store(tmp_path) -> Store:  # type: ignore[no-untyped-def]
    store = await Store.open(f"sqlite:///{tmp_path / 'spend.db'}")
    await store.insert_team(TeamRecord(team_id="t", max_budget=10.0, budget_duration="1h", budget_reset_at=T0 + 3600))
    await store.insert_key(KeyRecord(token_hash=KEY[1], team_id="t", max_budget=5.0))
    return store


def writer_for(store, ledger: Ledger, **settings) -> SpendWriter:  # type: ignore[no-untyped-def]
    return SpendWriter(store, ledger, SpendSettings(**settings), Metrics(), shared=False)


def test_flush_writes_increments_rows_and_period_resets(tmp_path):
    async def run() -> None:
        store = await open_store(tmp_path)
        ledger = Ledger()
        ledger.track(KEY, await store.get_key(KEY[1]), T0)
        ledger.track(TEAM, await store.get_team("t"), T0)
        writer = writer_for(store, ledger)
        ledger.add([KEY, TEAM], 0.25, T0)
        writer.add_row(row("r1", T0))
        assert await writer.flush()
        assert (await store.get_key(KEY[1])).spend == 0.25 and (await store.get_team("t")).spend == 0.25
        assert [r.request_id for r in await store.spend_logs()] == ["r1"]

        ledger.check([KEY, TEAM], T0 + 3600)  # the team's hour is over
        ledger.add([KEY, TEAM], 0.5, T0 + 3601)
        assert await writer.flush()
        team = await store.get_team("t")
        assert (team.spend, team.budget_reset_at) == (0.5, T0 + 7200)  # reset, then this period's spend
        assert (await store.get_key(KEY[1])).spend == 0.75  # the key's budget has no period
        assert await writer.flush()  # nothing pending: a no-op
        await store.close()

    asyncio.run(run())


def test_a_failed_write_keeps_everything_for_the_next_flush(tmp_path):
    async def run() -> None:
        store = await open_store(tmp_path)
        ledger = Ledger()
        ledger.track(KEY, await store.get_key(KEY[1]), T0)
        writer = writer_for(store, ledger)
        real = store.apply_spend

        async def down(batch):  # type: ignore[no-untyped-def]
            raise ConnectionError("database unreachable")

        store.apply_spend = down  # type: ignore[method-assign]
        ledger.add([KEY], 0.3, T0)
        writer.add_row(row("r1", T0))
        assert not await writer.flush()
        assert writer.failures == 1 and len(writer.rows) == 1 and ledger.states[KEY].pending == pytest.approx(0.3)
        ledger.add([KEY], 0.2, T0)
        writer.add_row(row("r2", T0))
        store.apply_spend = real  # type: ignore[method-assign]
        await writer.close()  # the shutdown path writes what is left
        assert (await store.get_key(KEY[1])).spend == pytest.approx(0.5)
        assert sorted(r.request_id for r in await store.spend_logs()) == ["r1", "r2"]
        await store.close()

    asyncio.run(run())


def test_rows_older_than_the_retention_are_pruned(tmp_path):
    async def run() -> None:
        store = await open_store(tmp_path)
        now = time.time()
        writer = writer_for(store, Ledger(), log_retention=86400.0)
        for name, age in (("old", 2 * 86400), ("recent", 3600)):
            writer.add_row(row(name, now - age))
        await writer.flush()
        await writer._maybe_prune()
        assert [r.request_id for r in await store.spend_logs()] == ["recent"]

        keep_all = writer_for(store, Ledger(), log_retention=0.0)
        keep_all.add_row(row("ancient", now - 400 * 86400))
        await keep_all.flush()
        await keep_all._maybe_prune()
        assert sorted(r.request_id for r in await store.spend_logs()) == ["ancient", "recent"]
        await store.close()

    asyncio.run(run())


def test_the_same_row_written_twice_is_stored_once(tmp_path):
    """A batch retried after a write that did land must not double the log."""

    async def run() -> None:
        store = await open_store(tmp_path)
        writer = writer_for(store, Ledger())
        writer.add_row(row("r1", T0))
        await writer.flush()
        writer.add_row(row("r1", T0))
        await writer.flush()
        assert len(await store.spend_logs()) == 1
        await store.close()

    asyncio.run(run())


def _poison(store: Store, model: str) -> None:
    """The database itself refuses rows for ``model`` (a trigger), as a constraint or a bad value would."""
    conn = store.db._connect()  # the store's own connection, on this test's thread before any query runs
    conn.execute(
        f"CREATE TRIGGER poison BEFORE INSERT ON spend_logs WHEN NEW.model = '{model}' BEGIN SELECT RAISE(ABORT, 'poison'); END"
    )


def test_a_row_the_database_refuses_is_quarantined_and_everything_else_lands(tmp_path):
    async def run() -> None:
        store = await open_store(tmp_path)
        await store.db.fetchone("SELECT 1")  # the SQLite connection exists now
        await store.db._run(_poison, store, "bad")
        ledger = Ledger()
        ledger.track(KEY, await store.get_key(KEY[1]), T0)
        writer = writer_for(store, ledger)
        ledger.add([KEY], 0.25, T0)
        rows = [row(f"r{n}", T0) for n in range(7)]
        rows[3].model = "bad"
        for r in rows:
            writer.add_row(r)
        assert await writer.flush()  # the store took what it could
        assert writer.quarantined == 1 and writer.rows == []
        assert sorted(r.request_id for r in await store.spend_logs()) == ["r0", "r1", "r2", "r4", "r5", "r6"]
        assert (await store.get_key(KEY[1])).spend == pytest.approx(0.25)  # the spend of the batch landed
        writer.add_row(row("r7", T0))
        assert await writer.flush() and writer.quarantined == 1  # never retried
        assert len(await store.spend_logs()) == 7
        await store.close()

    asyncio.run(run())


def test_an_outage_while_writing_in_parts_keeps_exactly_what_was_not_written(tmp_path):
    async def run() -> None:
        store = await open_store(tmp_path)
        ledger = Ledger()
        ledger.track(KEY, await store.get_key(KEY[1]), T0)
        writer = writer_for(store, ledger)
        real = store.apply_spend
        calls = []

        async def flaky(batch):  # type: ignore[no-untyped-def]
            calls.append(batch)
            if len(calls) == 1:
                raise ValueError("a value the database refuses")  # not an outage: written in parts
            if len(calls) == 3:
                raise DatabaseUnavailable("gone")  # the database goes away midway
            return await real(batch)

        store.apply_spend = flaky  # type: ignore[method-assign]
        ledger.add([KEY], 0.5, T0)
        for n in range(4):
            writer.add_row(row(f"r{n}", T0))
        assert not await writer.flush()
        # call 2 wrote the spend; call 3 (the rows) failed: the rows are kept, the spend is not kept twice
        assert [r.request_id for r in writer.rows] == ["r0", "r1", "r2", "r3"] and writer.quarantined == 0
        assert ledger.states[KEY].pending == 0.0
        store.apply_spend = real  # type: ignore[method-assign]
        assert await writer.flush()
        assert (await store.get_key(KEY[1])).spend == pytest.approx(0.5)
        assert len(await store.spend_logs()) == 4
        await store.close()

    asyncio.run(run())


@pytest.mark.parametrize(
    "error, outage",
    [
        (DatabaseUnavailable("down"), True),
        (ConnectionRefusedError(), True),
        (asyncio.TimeoutError(), True),
        (OverflowError("Python int too large to convert to SQLite INTEGER"), False),
        (ValueError("invalid byte sequence"), False),
        (IntegrityViolation("constraint failed"), False),
    ],
)
def test_only_an_outage_keeps_a_batch_for_a_retry_as_it_is(error, outage):
    assert is_outage(error) is outage
