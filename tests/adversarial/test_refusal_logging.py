"""Issue 11.5: a key cannot grow the database without bound, on SQLite and PostgreSQL.

Refusals are not rate limited (a key over its rpm limit is the very case), so their rows are
sampled per key: 10 rows at once, then one a minute, each carrying in ``requests`` how many
refusals it stands for (README, docs/money.md). The counts must add up exactly; the rows must not.
"""

from __future__ import annotations

import asyncio
import math
import os
import time

import httpx

from tests.adversarial.stores import ANTHROPIC_VERSION, gateway_on, spend_logs, store_url  # noqa: F401  (fixture)
from tests.integration.harness import anthropic_body

BURST = 10  # refusal rows a key writes before sampling starts (documented)
PER_MINUTE = 1  # rows a minute after that (documented), each with its count
MODEL_CAP = 256


def test_an_rpm_1_key_sending_300_requests_writes_a_bounded_number_of_rows(upstream, store_url, tmp_path):
    gw = gateway_on(upstream, store_url, tmp_path).start()
    try:
        key = gw.create_key(rpm_limit=1)
        started = time.monotonic()
        with httpx.Client(base_url=gw.url, headers={"x-api-key": key, **ANTHROPIC_VERSION}, timeout=30) as client:
            statuses = [client.post("/v1/messages", json=anthropic_body("priced")).status_code for _ in range(300)]
        elapsed = time.monotonic() - started
        assert statuses.count(200) == 1 and statuses.count(429) == 299
    finally:
        assert gw.stop() == 0  # a clean stop writes the refusals still being counted
    with gw.start():
        rows = spend_logs(gw, api_key=key)
    refused = [r for r in rows if r["status"] == 429]
    assert sum(r["requests"] for r in refused) == 299  # every refusal counted, none lost
    if elapsed < 60:  # within a minute: the burst row by row, then one row with the rest, written at the stop
        assert len(refused) == BURST + 1 and refused[0]["requests"] == 299 - BURST, (refused[0], elapsed)
    assert len(refused) <= BURST + PER_MINUTE * math.ceil(elapsed / 60) + 1, (len(refused), elapsed)
    assert [(r["status"], r["requests"]) for r in rows if r["status"] == 200] == [(200, 1)]


def _stored_bytes(store_url: str) -> int:
    if store_url.startswith("sqlite"):
        path = store_url[len("sqlite:///"):]
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))

    async def size() -> int:
        import asyncpg

        conn = await asyncpg.connect(store_url)
        try:
            return int(await conn.fetchval("SELECT pg_total_relation_size('spend_logs')"))
        finally:
            await conn.close()

    return asyncio.run(size())


def test_41_requests_with_5_mb_model_names_store_kilobytes_not_200_mb(upstream, store_url, tmp_path):
    name = "m" * 5_000_000
    gw = gateway_on(upstream, store_url, tmp_path).start()
    try:
        key = gw.create_key()
        with httpx.Client(base_url=gw.url, headers={"x-api-key": key, **ANTHROPIC_VERSION}, timeout=60) as client:
            for _ in range(41):
                assert client.post("/v1/messages", json=anthropic_body(name)).status_code == 404
    finally:
        assert gw.stop() == 0
    with gw.start():
        rows = spend_logs(gw, api_key=key)
    assert sum(r["requests"] for r in rows) == 41
    assert rows and all(r["model"] == "m" * MODEL_CAP for r in rows)
    assert _stored_bytes(store_url) < 2_000_000  # 41 whole names would be 205 MB
