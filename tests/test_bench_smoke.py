"""The benchmark keeps working: ``python -m bench --smoke`` runs every phase in miniature.

The figures of a smoke run are too short to judge; this checks that each phase ran, every
response was a success, and the results file holds what the README says it does.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bench.histogram import PRECISION, Histogram, bucket_of, bucket_range
from bench.search import Step, search_rates
from keystile.testing.upstream import start_in_thread

REPO = Path(__file__).resolve().parent.parent


def test_smoke_run_measures_every_phase(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--results-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=100,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "== Targets ==" in out.stdout
    files = sorted(p.name for p in tmp_path.glob("*.json"))
    assert "latest.json" in files and len(files) == 2, files
    results = json.loads((tmp_path / "latest.json").read_text())

    assert results["mode"] == "smoke" and results["enforce_targets"] is False
    for key in ("cpu_model", "cpus", "python", "uvicorn", "load_generator"):
        assert results["machine"][key]
    seen = {(r["scenario"], r["connections"], r["via"]) for r in results["runs"]}
    for scenario in ("messages", "messages-stream", "chat"):
        assert {(scenario, 64, "direct"), (scenario, 64, "keystile")} <= seen
    assert {("messages", 64, "floor"), ("messages", 64, "routed")} <= seen
    for run in results["runs"]:
        assert run["requests"] > 0 and run["rps"] > 0, run
        assert sum(run["errors"].values()) == 0, run
        if run["via"] != "direct":
            assert run["gateway_cpu_us_per_request"] > 0 and run["rss_after_mb"] > 5, run

    # Open loop at one connection: every scheduled request answered, recorded in the histogram.
    latency = results["latency"]
    assert list(latency) == ["messages", "messages-stream"]
    assert set(latency["messages"]) >= {"direct", "floor", "keystile"} and "floor" not in latency["messages-stream"]
    assert latency["messages"]["metric"] == "latency_us" and latency["messages-stream"]["metric"] == "ttfb_us"
    for entry in latency.values():
        for via in ("direct", "floor", "keystile"):
            if via not in entry:
                continue
            run = entry[via]
            assert run["requests"] == 300 and run["rate_target"] == 1000 and run["connections"] == 1, run
            assert sum(run["errors"].values()) == 0, run
            histogram = Histogram.from_json(run["latency_histogram"])
            assert histogram.count == 300 == sum(n for _, n in run["latency_histogram"]["counts"])
            q = run[entry["metric"]]
            assert 0 < q["p50"] <= q["p90"] <= q["p99"] <= q["p99.9"] <= q["max"], q
            assert run["client_lateness_us"]["count"] == 300 and run["client_cpu_us_per_request"] > 0
        metric = entry["metric"]
        assert entry["added_ms"]["p99"] == (entry["keystile"][metric]["p99"] - entry["direct"][metric]["p99"]) / 1000
        assert entry["keystile"]["gateway_cpu_us_per_request"] > 0

    # Throughput at a latency bound: a step per worker count, a figure (or "below the start") per bound.
    search = results["search"]
    assert set(search["workers"]) == {"1", "2"}
    for found in search["workers"].values():
        assert [r["bound_ms"] for r in found["results"]] == [1.0, 5.0]
        assert [s["rate"] for s in found["steps"]] == [200.0]
        for result in found["results"]:
            assert result["below_start"] or result["rate"] == 200.0

    # Many long streams: every one completes, direct and through keystile, and lasts at least its pauses.
    long = results["long_streams"]
    for via in ("direct", "keystile"):
        run = long[via]
        assert run["completed"] == run["streams"] == 100, run
        assert run["duration_s"]["p50"] >= 3 * 0.05 and run["events_per_stream"]["p50"] >= 4, run
    assert 5 < long["rss_mb"]["before"] <= long["rss_mb"]["peak"]
    assert long["rss_mb"]["after"] > 5 and long["open_fds"]["before"] > 0

    for name in ("messages-stream", "chat-stream"):
        ttfb = results["ttfb"][name]
        assert ttfb["direct"]["non_200"] == 0 and ttfb["keystile"]["non_200"] == 0
        assert ttfb["keystile"]["ttfb_ms"]["p50"] > 0
        assert ttfb["keystile"]["keystile_overhead_header_ms"] is not None
        for stream in results["pacing"][name]["keystile"]["streams"]:
            assert stream["status"] == 200 and stream["events"] > 3

    soak = results["soak"]
    assert soak["completed"] and soak["load"]["requests"] >= 2000
    assert sum(soak["load"]["errors"].values()) == 0
    assert soak["rss_samples_mb"] and soak["rss_last_mb"] > 5
    assert 0 < results["startup"]["seconds"][0] < 30
    assert results["spend"]["key_spend_usd"] > 0, "spend accounting did not run"
    names = {t["name"] for t in results["targets"]}
    assert "throughput, non-streaming Messages, 64 connections" in names
    assert "database reads, non-streaming Messages, 64 connections" in names
    assert {"added p50 latency at 1 connection, messages", "added p99 latency at 1 connection, messages",
            "added p99 latency at 1 connection, messages-stream (time to first byte)",
            "long streams: all 100 concurrent streams through one worker complete"} <= names
    assert all(t["pass"] is not None for t in results["targets"])


def test_python_load_generator(tmp_path: Path) -> None:
    """bench.pyload stands in for wrk where wrk cannot be installed; keep it honest."""
    url, mock = start_in_thread()
    try:
        port = int(url.rsplit(":", 1)[1])
        body = '{"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]}'
        spec = {
            "host": "127.0.0.1", "port": port, "connections": 4, "duration": 10, "max_requests": 300,
            "requests": [{"method": "POST", "path": "/v1/messages", "body": body,
                          "headers": [["content-type", "application/json"], ["x-api-key", "sk-test"],
                                      ["anthropic-version", "2023-06-01"]]}],
        }
        path = tmp_path / "spec.json"
        path.write_text(json.dumps(spec))
        out = subprocess.run([sys.executable, "-m", "bench.pyload", str(path)], cwd=REPO,
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        line = next(line for line in out.stdout.splitlines() if line.startswith("BENCH_RESULT "))
        result = json.loads(line.split(" ", 1)[1])
        assert result["requests"] == 300
        assert sum(result["errors"].values()) == 0
        assert 0 < result["latency_us"]["p50"] <= result["latency_us"]["p99"] <= result["latency_us"]["max"]
        assert mock.stats()["requests"] == 300
    finally:
        mock.stop()


def _open_loop(tmp_path: Path, port: int, rate: float, count: int, connections: int = 1, max_lag: float = 5.0) -> dict:
    body = '{"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]}'
    request = (f"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-length: {len(body)}\r\n"
               "content-type: application/json\r\nx-api-key: sk-test\r\nanthropic-version: 2023-06-01\r\n\r\n" + body)
    spec = {"host": "127.0.0.1", "port": port, "requests": [request], "rate": rate, "count": count,
            "connections": connections, "warmup": 0.0, "max_lag": max_lag, "stream": False}
    path = tmp_path / "openloop.json"
    path.write_text(json.dumps(spec))
    out = subprocess.run([sys.executable, "-m", "bench.openloop", str(path)], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(next(line for line in out.stdout.splitlines() if line.startswith("BENCH_RESULT ")).split(" ", 1)[1])


def test_open_loop_client_counts_the_wait_behind_a_slow_answer(tmp_path: Path) -> None:
    """Coordinated omission: 40 requests scheduled 5 ms apart on one connection to a server that takes 20 ms each.

    Request k is due at 5k ms but cannot finish before 20(k+1) ms, so its latency is at least
    20 + 15k ms: the median (k = 19) at least 305 ms, the last (k = 39) at least 605 ms. A
    closed-loop client would report about 20 ms for every one.
    """
    url, mock = start_in_thread(latency_ms=20)
    try:
        result = _open_loop(tmp_path, int(url.rsplit(":", 1)[1]), rate=200, count=40)
    finally:
        mock.stop()
    assert result["requests"] == 40 and sum(result["errors"].values()) == 0
    assert result["latency_us"]["p50"] >= 300_000
    assert result["latency_us"]["max"] >= 600_000
    assert result["client_lateness_us"]["count"] == 40


def test_open_loop_client_keeps_to_its_schedule(tmp_path: Path) -> None:
    """200 requests at 400/s over two connections: never sent early, so they span at least 199/400 s."""
    url, mock = start_in_thread()
    try:
        result = _open_loop(tmp_path, int(url.rsplit(":", 1)[1]), rate=400, count=200, connections=2)
        assert mock.stats()["requests"] == 200
        assert len({r["connection"] for r in mock.requests()}) == 2
    finally:
        mock.stop()
    assert result["requests"] == 200 and result["sustained"] and sum(result["errors"].values()) == 0
    assert result["seconds"] >= 199 / 400


def test_open_loop_client_stops_when_the_rate_cannot_be_kept(tmp_path: Path) -> None:
    """A server at 50 ms per answer on one connection cannot keep 1,000 requests/s: the run gives up at max_lag."""
    url, mock = start_in_thread(latency_ms=50)
    try:
        result = _open_loop(tmp_path, int(url.rsplit(":", 1)[1]), rate=1000, count=2000, max_lag=0.2)
    finally:
        mock.stop()
    assert result["sustained"] is False
    assert result["requests"] < 2000 and result["max_lag_ms"] > 200


def test_histogram_buckets_by_hand() -> None:
    assert all(bucket_range(bucket_of(v)) == (v, v) for v in (0, 1, 1000, 2047))  # below 2**11: exact
    assert bucket_range(bucket_of(2049)) == (2048, 2049)  # 2**11 .. 2**12: buckets of 2
    assert bucket_range(bucket_of(4096)) == (4096, 4099)  # 2**12 .. 2**13: buckets of 4
    assert bucket_range(bucket_of(1_000_000)) == (999_936, 1_000_447)  # 2**19 .. 2**20: buckets of 512
    assert PRECISION == 1 / 1024


def test_histogram_percentiles_against_the_sorted_values() -> None:
    rng = random.Random(16)
    values = [int(rng.lognormvariate(12, 1.2)) for _ in range(50_000)]
    histogram, halves = Histogram(), (Histogram(), Histogram())
    for i, v in enumerate(values):
        histogram.record(v)
        halves[i % 2].record(v)
    ordered = sorted(values)
    for q in (50, 90, 99, 99.9, 99.99):
        exact = ordered[math.ceil(q / 100 * len(ordered) - 1e-9) - 1]
        assert exact <= histogram.percentile(q) <= exact * (1 + PRECISION), q
    assert (histogram.count, histogram.min, histogram.max) == (50_000, ordered[0], ordered[-1])
    assert histogram.summary()["mean"] == pytest.approx(sum(values) / len(values) / 1000, rel=1e-12)
    merged = Histogram()
    for half in halves:
        merged.merge(half)
    assert merged.to_json() == histogram.to_json() == Histogram.from_json(histogram.to_json()).to_json()


def test_search_brackets_each_bound() -> None:
    """A fake gateway whose added p99 is rate / 1000 ms: worked by hand.

    Doubling from 250: 250 … 4000 pass the 5 ms bound, 8000 fails. 1 ms: 1000 passes, 2000 fails;
    bisected at √(1000·2000) = 1414 (fails) and √(1000·1414) = 1189 (fails). 5 ms: √(4000·8000) = 5657
    (fails), √(4000·5657) = 4757 (passes).
    """
    tried = []

    def measure(rate: float) -> Step:
        tried.append(rate)
        return Step(rate, rate / 1000)

    found = search_rates(measure, (1.0, 5.0), start=250, ceiling=64_000, budget=100, refine=2)
    assert tried == [250, 500, 1000, 2000, 4000, 8000, 1414, 1189, 5657, 4757]
    assert [(r["rate"], r["first_failing_rate"]) for r in found["results"]] == [(1000, 1189), (4757, 5657)]
    unsustained = search_rates(lambda rate: Step(rate, 0.1, sustained=rate < 600), (1.0,), start=250, ceiling=64_000,
                               budget=100, refine=1)
    assert [s["rate"] for s in unsustained["steps"]] == [250, 500, 707, 1000]
    assert unsustained["results"][0]["rate"] == 500
