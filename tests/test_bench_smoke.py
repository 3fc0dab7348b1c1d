"""The benchmark keeps working: ``python -m bench --smoke`` runs every phase in a few seconds.

The figures of a smoke run are too short to judge; this checks that each phase ran, every
response was a success, and the results file holds what the README says it does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
        for connections in (1, 64):
            assert {(scenario, connections, "direct"), (scenario, connections, "keystile")} <= seen
    assert {("messages", 64, "floor"), ("messages", 1, "routed"), ("messages", 64, "routed")} <= seen
    for run in results["runs"]:
        assert run["requests"] > 0 and run["rps"] > 0, run
        assert sum(run["errors"].values()) == 0, run
        if run["via"] != "direct":
            assert run["gateway_cpu_us_per_request"] > 0 and run["rss_after_mb"] > 5, run

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
