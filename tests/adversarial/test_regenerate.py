"""Issue 11.9: regenerating a key keeps its history, on SQLite and PostgreSQL.

Spend and spend-log rows follow the key's stable id, not the hash of its current secret:
streams still running under the old secret when ``/key/regenerate`` answers are charged to
the key, and their rows are found under it afterwards — also after a restart.
"""

from __future__ import annotations

import threading

import anthropic
import httpx
import pytest

from tests.adversarial.stores import ANTHROPIC_VERSION, gateway_on, key_info, spend_logs, store_url, usage_cost  # noqa: F401

STREAMS = 5


def test_streams_in_flight_during_regenerate_land_on_the_key(upstream, store_url, tmp_path):
    # Slow the streams down so that all of them are mid-way when the key is regenerated.
    upstream.set_faults([{"match": {"model": "claude-sonnet-4-5-20250929", "stream": True}, "action": {"type": "event_delay", "seconds": 0.15}}])
    gw = gateway_on(upstream, store_url, tmp_path).start()
    try:
        old = gw.create_key(key_alias="rotating", max_budget=100)
        started = threading.Barrier(STREAMS + 1, timeout=30)
        regenerated = threading.Event()
        results: dict[int, tuple[str, float, bool]] = {}
        errors: list[BaseException] = []

        def stream(n: int) -> None:
            try:
                with anthropic.Anthropic(base_url=gw.url, api_key=old, max_retries=0) as client:
                    with client.messages.stream(
                        model="priced", max_tokens=200, messages=[{"role": "user", "content": f"stream {n}, please"}]
                    ) as running:
                        request_id = running.response.headers["x-keystile-request-id"]
                        next(iter(running))  # the first event is here: the request is admitted and in flight
                        started.wait()
                        for _ in running:
                            pass
                        final = running.get_final_message()
                results[n] = (request_id, usage_cost(final.usage), regenerated.is_set())
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
                started.abort()

        threads = [threading.Thread(target=stream, args=(n,)) for n in range(STREAMS)]
        for thread in threads:
            thread.start()
        started.wait()
        answer = gw.admin("POST", "/key/regenerate", json={"key": old})
        regenerated.set()
        assert answer.status_code == 200, answer.text
        new = answer.json()["key"]
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        assert len(results) == STREAMS and all(done_after for _, _, done_after in results.values())

        expected = sum(cost for _, cost, _ in results.values())
        ids = sorted(request_id for request_id, _, _ in results.values())
        assert expected > 0
        old_rejected = httpx.post(f"{gw.url}/v1/messages", json={"model": "priced", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
                                  headers={"x-api-key": old, **ANTHROPIC_VERSION})
        assert old_rejected.status_code == 401
        assert key_info(gw, new)["spend"] == pytest.approx(expected, rel=1e-9)
        assert sorted(r["request_id"] for r in spend_logs(gw, api_key=new)) == ids
    finally:
        assert gw.stop() == 0
        upstream.clear_faults()
    with gw.start():  # all of it reached the store, under the key
        info = key_info(gw, new)
        assert info["spend"] == pytest.approx(expected, rel=1e-9) and info["key_alias"] == "rotating"
        assert info["remaining_budget"] == pytest.approx(100 - expected, rel=1e-9)
        assert sorted(r["request_id"] for r in spend_logs(gw, api_key=new)) == ids
        assert {r["key_alias"] for r in spend_logs(gw, api_key=new)} == {"rotating"}
