"""Issue 11.1: one bad row never stops spend from being saved, on SQLite and PostgreSQL.

Each case sends what used to poison every later spend write (a NUL in the model name, an
upstream reporting 2^63 tokens, a 5 MB model name), then normal traffic from another key,
whose spend and log rows must reach the store — checked again after a SIGTERM and a fresh
start, which must lose nothing.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from dataclasses import dataclass
from typing import Callable

import anthropic
import pytest

from tests.adversarial.stores import (
    LIAR_MODEL,
    PRICE_CACHE_READ,
    PRICE_IN,
    PRICE_OUT,
    anthropic_reply,
    gateway_on,
    key_info,
    post_messages,
    spend_logs,
    store_url,  # noqa: F401  (fixture)
    usage_cost,
)
from tests.integration.harness import GatewayProcess, anthropic_body

MAX_TOKENS = 10**15  # the largest token count keystile takes from an upstream (docs/money.md)
MODEL_CAP = 256  # the longest model name a log row keeps (README, docs/money.md)


def normal_traffic(gw: GatewayProcess, key: str, requests: int = 3) -> float:
    """Requests through the official SDK; returns their hand-worked cost from the usage it parsed."""
    total = 0.0
    with anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0) as client:
        for n in range(requests):
            reply = client.messages.create(model="priced", max_tokens=64, messages=[{"role": "user", "content": f"hello {n}"}])
            assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
            total += usage_cost(reply.usage)
    return total


@dataclass(frozen=True)
class Case:
    send: Callable[[GatewayProcess, str, object], None]
    """Send the hostile request with the given key (and the mock upstream)."""
    check: Callable[[list[dict]], None]
    """Check the hostile request's stored log rows."""


def _send_nul_model(gw: GatewayProcess, key: str, upstream: object) -> None:
    response = post_messages(gw, key, anthropic_body("x\u0000"))
    assert 400 <= response.status_code < 500, response.text


def _check_nul_model(rows: list[dict]) -> None:
    assert [(r["model"], r["status"]) for r in rows] == [("x", 404)]  # the NUL removed, the row kept


def _send_huge_usage(gw: GatewayProcess, key: str, upstream) -> None:  # type: ignore[no-untyped-def]
    usage = {"input_tokens": 2**63, "output_tokens": 2**63 + 5, "cache_read_input_tokens": 2**64 - 1}
    upstream.set_faults([{"match": {"model": LIAR_MODEL}, "action": {"type": "status", "status": 200, "body": anthropic_reply(usage)}}])
    response = post_messages(gw, key, anthropic_body("liar"))
    assert response.status_code == 200, response.text
    upstream.clear_faults()


def _check_huge_usage(rows: list[dict]) -> None:
    [row] = rows
    assert row["status"] == 200
    # each count is taken up to 10^15 (docs/money.md), so it fits every column and JSON exactly
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"]) == (MAX_TOKENS, MAX_TOKENS, MAX_TOKENS)
    assert row["spend"] == pytest.approx(MAX_TOKENS * (PRICE_IN + PRICE_OUT + PRICE_CACHE_READ), rel=1e-12)  # $3.5e12


def _send_huge_model(gw: GatewayProcess, key: str, upstream: object) -> None:
    response = post_messages(gw, key, anthropic_body("m" * 5_000_000))
    assert response.status_code == 404


def _check_huge_model(rows: list[dict]) -> None:
    assert [(r["model"], r["status"]) for r in rows] == [("m" * MODEL_CAP, 404)]


CASES = {
    "nul-in-model": Case(_send_nul_model, _check_nul_model),
    "2^63-tokens": Case(_send_huge_usage, _check_huge_usage),
    "5MB-model-name": Case(_send_huge_model, _check_huge_model),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_row_never_stops_spend_from_being_saved(case, upstream, store_url, tmp_path):
    gw = gateway_on(upstream, store_url, tmp_path).start()
    try:
        hostile, good = gw.create_key(key_alias="hostile"), gw.create_key(key_alias="good")
        CASES[case].send(gw, hostile, upstream)
        expected = normal_traffic(gw, good)
        # /spend/logs writes what is pending first: these rows are in the store now
        assert [r["status"] for r in spend_logs(gw, api_key=good)] == [200, 200, 200]
        CASES[case].check(spend_logs(gw, api_key=hostile))
        assert key_info(gw, good)["spend"] == pytest.approx(expected, rel=1e-9)
    finally:
        code = gw.stop()
    log = gw.log()
    assert code == 0, log[-3000:]
    assert "spend write failed" not in log and "could not write" not in log and "quarantined" not in log, log[-3000:]

    with gw.start():  # what reached the store
        assert key_info(gw, good)["spend"] == pytest.approx(expected, rel=1e-9)
        assert [r["status"] for r in spend_logs(gw, api_key=good)] == [200, 200, 200]
        CASES[case].check(spend_logs(gw, api_key=hostile))


# --- what sanitising cannot foresee: the database refuses a row anyway -------------------------------


POISON = "poison-row"


def _refuse_poison_rows(store_url: str) -> None:
    """Make the database itself refuse one kind of spend-log row, as a constraint or a bad value would."""
    if store_url.startswith("sqlite"):
        path = store_url[len("sqlite:///"):]
        with sqlite3.connect(path) as conn:
            conn.execute(
                f"CREATE TRIGGER poison BEFORE INSERT ON spend_logs WHEN NEW.model = '{POISON}' "
                "BEGIN SELECT RAISE(ABORT, 'poison row'); END"
            )
        return

    async def install() -> None:
        import asyncpg

        conn = await asyncpg.connect(store_url)
        try:
            await conn.execute(
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.model = '{POISON}' THEN RAISE EXCEPTION 'poison row'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            await conn.execute("CREATE TRIGGER poison BEFORE INSERT ON spend_logs FOR EACH ROW EXECUTE FUNCTION poison()")
        finally:
            await conn.close()

    asyncio.run(install())


def test_a_row_the_database_refuses_is_quarantined_and_the_rest_lands(upstream, store_url, tmp_path):
    gw = gateway_on(upstream, store_url, tmp_path).start()
    try:
        _refuse_poison_rows(store_url)
        hostile, good = gw.create_key(key_alias="hostile"), gw.create_key(key_alias="good")
        poisoned = post_messages(gw, hostile, anthropic_body(POISON))
        assert poisoned.status_code == 404
        poisoned_id = poisoned.headers["x-keystile-request-id"]
        other = post_messages(gw, hostile, anthropic_body("another-unknown-model"))  # same batch, a good row
        expected = normal_traffic(gw, good)
        assert [r["status"] for r in spend_logs(gw, api_key=good)] == [200, 200, 200]
        assert [r["request_id"] for r in spend_logs(gw, api_key=hostile)] == [other.headers["x-keystile-request-id"]]
        assert key_info(gw, good)["spend"] == pytest.approx(expected, rel=1e-9)
        metrics = gw.admin("GET", "/metrics").text
        assert re.search(r'^keystile_spend_quarantined_total\{kind="row"\} 1\.0$', metrics, re.M), metrics
        normal_traffic(gw, good, requests=1)  # later batches are not held back by it
        assert len(spend_logs(gw, api_key=good)) == 4
    finally:
        code = gw.stop()
    log = gw.log()
    assert code == 0
    quarantined = [line for line in log.splitlines() if "quarantined" in line]
    assert len(quarantined) == 1 and poisoned_id in quarantined[0], log[-3000:]  # logged once, with its request id
    assert "could not write" not in log
