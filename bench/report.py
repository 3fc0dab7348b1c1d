"""Targets, the printed tables, and the JSON result files."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"

THROUGHPUT_RPS = 5000
ADDED_P50_MS = 0.3
ADDED_P99_MS = 1.0
ADDED_TTFB_MS = 1.0
RSS_LIMIT_MB = 100.0
STORE_CALLS_PER_1000 = 10  # per 1,000 requests: authentication, limits and budgets from memory; spend written in batches
RSS_GROWTH_MB = 2.0  # allowed growth over the soak's second half
READY_SECONDS = 2.0
NOISY_OTHER_PERCENT = 20  # CPU of processes outside the benchmark, per run, above which a run counts as noisy


def _run(results: dict, scenario: str, connections: int, via: str) -> dict | None:
    for run in results.get("runs", []):
        if run["scenario"] == scenario and run["connections"] == connections and run["via"] == via:
            return run
    return None


def added_latency(results: dict, scenario: str, connections: int) -> dict | None:
    direct = _run(results, scenario, connections, "direct")
    through = _run(results, scenario, connections, "keystile")
    if direct is None or through is None:
        return None
    return {q: (through["latency_us"][q] - direct["latency_us"][q]) / 1000.0 for q in ("p50", "p99")}


def _target(name: str, value: float | None, limit: float, unit: str, at_most: bool = True) -> dict:
    if value is None:
        return {"name": name, "value": None, "limit": limit, "unit": unit, "pass": None}
    ok = value <= limit if at_most else value >= limit
    return {"name": name, "value": value, "limit": limit, "unit": unit, "pass": ok, "at_most": at_most}


def evaluate(results: dict) -> list[dict]:
    targets = []
    run = _run(results, "messages", 64, "keystile")
    throughput = _target("throughput, non-streaming Messages, 64 connections", run and run["rps"], THROUGHPUT_RPS, "req/s", at_most=False)
    if run and run["gateway_cpu_us_per_request"] > 0:
        # What one dedicated core would do at the measured CPU cost: robust when the machine is busy.
        throughput["note"] = f"CPU-bound estimate for a whole core: {1e6 / run['gateway_cpu_us_per_request']:,.0f} req/s"
    targets.append(throughput)
    if run and run.get("store_reads") is not None:
        n = max(run["requests"], 1)
        for kind in ("reads", "writes"):
            target = _target(f"database {kind}, non-streaming Messages, 64 connections",
                             1000 * run[f"store_{kind}"] / n, STORE_CALLS_PER_1000, "per 1,000 requests")
            target["note"] = f"{run[f'store_{kind}']:.0f} {kind} for {run['requests']:,} requests"
            targets.append(target)
    for scenario in ("messages", "messages-stream", "chat"):
        added = added_latency(results, scenario, 1)
        targets.append(_target(f"added p50 latency, {scenario}, 1 connection", added and added["p50"], ADDED_P50_MS, "ms"))
        targets.append(_target(f"added p99 latency, {scenario}, 1 connection", added and added["p99"], ADDED_P99_MS, "ms"))
    for name, ttfb in results.get("ttfb", {}).items():
        targets.append(_target(f"added time to first byte (p50), {name}", ttfb["added_ttfb_ms"]["p50"], ADDED_TTFB_MS, "ms"))
    pacing = results.get("pacing", {})
    if pacing:
        passed = all(p["keystile"]["passed"] for p in pacing.values())
        targets.append({"name": "streams not buffered (every event arrives on its own)", "value": passed, "limit": True,
                        "unit": "", "pass": passed})
    soak = results.get("soak")
    if soak:
        targets.append(_target("RSS after the soak", soak["rss_last_mb"], RSS_LIMIT_MB, "MB"))
        targets.append(_target("RSS growth over the soak's second half", soak["rss_growth_second_half_mb"], RSS_GROWTH_MB, "MB"))
    startup = results.get("startup", {}).get("seconds", [])
    targets.append(_target("ready after start (slowest launch)", max(startup) if startup else None, READY_SECONDS, "s"))
    errors = sum(run.get("error_count", 0) for run in results.get("runs", []))
    if soak:
        errors += sum(soak["load"]["errors"].values())
    targets.append({"name": "every response 2xx, no socket errors", "value": errors, "limit": 0, "unit": "errors",
                    "pass": errors == 0})
    return targets


# --- printing ---------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def load_table(results: dict) -> list[str]:
    header = (f"{'scenario':<16}{'conns':>6}  {'via':<9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'+p50 ms':>9}{'+p99 ms':>9}"
              f"{'µs CPU/req':>11}{'gw CPU':>8}{'load CPU':>9}{'other':>7}{'RSS MB':>15}{'errors':>7}")
    lines = [header, "-" * len(header)]
    for run in results.get("runs", []):
        p50, p99 = run["latency_us"]["p50"] / 1000, run["latency_us"]["p99"] / 1000
        errors = sum(run["errors"].values())
        plus50 = plus99 = cpu = gw = rss = "-"
        if run["via"] == "keystile":
            added = added_latency(results, run["scenario"], run["connections"])
            plus50 = f"{added['p50']:+.3f}" if added else "-"
            plus99 = f"{added['p99']:+.3f}" if added else "-"
        if run["via"] != "direct":
            cpu = f"{run['gateway_cpu_us_per_request']:.0f}"
            gw = _pct(run["gateway_cpu_percent"])
            rss = f"{run['rss_before_mb']:.1f} → {run['rss_after_mb']:.1f}"
        lines.append(
            f"{run['scenario']:<16}{run['connections']:>6}  {run['via']:<9}{run['rps']:>9,.0f}{_ms(p50):>9}{_ms(p99):>9}"
            f"{plus50:>9}{plus99:>9}{cpu:>11}{gw:>8}{_pct(run['load_side_cpu_percent']):>9}"
            f"{_pct(run['other_processes_cpu_percent']):>7}{rss:>15}{errors:>7}"
        )
    return lines


def print_report(results: dict) -> None:
    settings = results["settings"]
    print()
    print(f"== Throughput and latency: {results['machine']['load_generator']}, {settings['duration']:g} s per run, "
          f"keep-alive, small requests; direct = to the mock upstream, keystile = through the gateway ==")
    for line in load_table(results):
        print(line)
    print("   floor: a do-nothing ASGI app on uvicorn with keystile's server settings (what the server alone costs);\n"
          "   routed: the messages request to a group of three weighted deployments of the same upstream model;\n"
          "   +p50/+p99: added latency, keystile minus direct at the same connections; µs CPU/req: server worker CPU (all\n"
          "   threads) per request; gw CPU / load CPU: server worker / wrk + mock CPU as % of one core; other: CPU used by\n"
          "   processes outside the benchmark during the run (noise from other work on the machine).")
    own = [f"{r['scenario']}@{r['connections']} {r['keystile_overhead_mean_us']:.0f} µs"
           for r in results.get("runs", []) if r["via"] == "keystile" and r.get("keystile_overhead_mean_us")]
    if own:
        print("   keystile's own overhead histogram (keystile_overhead_seconds, mean over the run): " + ", ".join(own))
    for connections in sorted({r["connections"] for r in results.get("runs", []) if r["via"] == "routed"}):
        single, routed = _run(results, "messages", connections, "keystile"), _run(results, "messages", connections, "routed")
        if single and routed:
            print(f"   routing, messages@{connections}: a three-deployment weighted group {routed['rps']:,.0f} req/s, "
                  f"{routed['gateway_cpu_us_per_request']:.0f} µs CPU/req, p50 {routed['latency_us']['p50'] / 1000:.3f} ms; "
                  f"one deployment {single['rps']:,.0f} req/s, {single['gateway_cpu_us_per_request']:.0f} µs CPU/req, "
                  f"p50 {single['latency_us']['p50'] / 1000:.3f} ms")
    calls = [f"{r['scenario']}@{r['connections']} {r['store_reads']:.0f} reads + {r['store_writes']:.0f} writes / {r['requests']:,} requests"
             for r in results.get("runs", []) if r["via"] == "keystile" and r.get("store_reads") is not None]
    if calls:
        print("   database round trips during the run (keystile_store_calls_total): " + ", ".join(calls))
    busiest = _run(results, "messages", 64, "keystile")
    if busiest and busiest.get("gateway_worker_threads"):
        threads = [f"{t['name']}[{t['tid']}] {t['cpu_percent']:.0f}% ({t['us_per_request']:.0f} µs/req)"
                   for t in busiest["gateway_worker_threads"] if t["cpu_percent"] >= 1]
        print("   keystile worker threads, messages@64: " + ", ".join(threads))
    noisy = [r for r in results.get("runs", []) if r["other_processes_cpu_percent"] > NOISY_OTHER_PERCENT]
    if noisy:
        print(f"   WARNING: other processes used more than {NOISY_OTHER_PERCENT}% of a core during {len(noisy)} of "
              f"{len(results['runs'])} runs: this machine was busy with other work, so latency and req/s are not "
              "representative\n   (µs CPU/req holds up best). Re-run when it is quiet, or with --wait-quiet 60.")
    saturated = [r for r in results.get("runs", []) if r["via"] == "keystile" and r["load_side_cpu_percent"] > 85]
    if saturated:
        print("   note: the load side (wrk + mock on one core) was above 85% busy in "
              + ", ".join(f"{r['scenario']}@{r['connections']}" for r in saturated)
              + " — those figures may be limited by the load side, not keystile.")

    ttfb = results.get("ttfb")
    if ttfb:
        n = next(iter(ttfb.values()))["direct"]["streams"]
        print(f"\n== Time to first byte of streams ({n} sequential streams on one connection; first SSE event) ==")
        print(f"{'stream':<17}{'direct p50':>11}{'p99':>8}{'keystile p50':>14}{'p99':>8}{'added p50':>11}{'p99':>8}"
              f"{'keystile header overhead p50':>30}")
        for name, t in ttfb.items():
            d, k = t["direct"]["ttfb_ms"], t["keystile"]["ttfb_ms"]
            header = t["keystile"]["keystile_overhead_header_ms"]
            print(f"{name:<17}{_ms(d['p50']):>11}{_ms(d['p99']):>8}{_ms(k['p50']):>14}{_ms(k['p99']):>8}"
                  f"{t['added_ttfb_ms']['p50']:>+11.3f}{t['added_ttfb_ms']['p99']:>+8.3f}"
                  f"{(_ms(header['p50']) + ' ms') if header else '-':>30}")

    pacing = results.get("pacing")
    if pacing:
        delay = next(iter(pacing.values()))["keystile"]["upstream_event_delay_ms"]
        print(f"\n== No buffering: upstream waits {delay:g} ms between events; gaps between events at the client ==")
        for name, p in pacing.items():
            k, d = p["keystile"], p["direct"]
            events = ", ".join(str(s["events"]) for s in k["streams"])
            print(f"{name:<17} keystile: gaps min {k['min_gap_ms']:.1f} / median {k['median_gap_ms']:.1f} / max {k['max_gap_ms']:.1f} ms, "
                  f"events per stream {events}, first event after {k['streams'][0]['first_event_ms']:.2f} ms "
                  f"(direct: min gap {d['min_gap_ms']:.1f} ms) -> {'separate' if k['passed'] else 'BUFFERED'}")

    soak = results.get("soak")
    if soak:
        load = soak["load"]
        print(f"\n== Soak: {load['requests']:,} requests through keystile ({', '.join(soak['mix'])} in rotation, "
              f"{soak['connections']} connections, {load['seconds']:.1f} s, {load['rps']:,.0f} req/s, "
              f"{sum(load['errors'].values())} errors{'' if soak['completed'] else ', STOPPED at --soak-timeout'}) ==")
        print(f"RSS of the worker: first sample {soak['rss_first_mb']:.1f} MB, last {soak['rss_last_mb']:.1f} MB, "
              f"max {soak['rss_max_mb']:.1f} MB; growth {soak['rss_growth_mb']:+.1f} MB over the soak, "
              f"{soak['rss_growth_second_half_mb']:+.1f} MB over its second half; "
              f"{soak['costs']['gateway_cpu_us_per_request']:.0f} µs CPU/request")

    startup = results.get("startup")
    if startup:
        print("\n== Startup: launch of `keystile serve` until /health/readiness answers 200 ==")
        print("  " + ", ".join(f"{s:.2f} s" for s in startup["seconds"]) + "  (first on a fresh database)")

    spend = results.get("spend")
    if spend:
        print(f"\nSpend accounting was on: the benchmark key spent ${spend['key_spend_usd']:.4f} "
              f"(rpm {spend['rpm_limit']:,}, tpm {spend['tpm_limit']:,}, parallel {spend['max_parallel_requests']:,}, "
              f"budget ${spend['max_budget']:,.0f} — all checked on every request, none reached).")

    print("\n== Targets ==")
    for t in results["targets"]:
        if t["pass"] is None:
            verdict, shown = "n/a ", "not measured"
        else:
            verdict = "PASS" if t["pass"] else "FAIL"
            if isinstance(t["value"], bool):
                shown = "yes" if t["value"] else "no"
            elif t["unit"] == "errors":
                shown = f"{t['value']} errors"
            else:
                bound = "≤" if t.get("at_most", True) else "≥"
                shown = f"{t['value']:,.3f} {t['unit']} (target {bound} {t['limit']:g} {t['unit']})"
        if not results["enforce_targets"] and t["pass"] is not None:
            verdict = f"({verdict.lower()})"
        print(f"  {verdict:<7}{t['name']}: {shown}" + (f"; {t['note']}" if t.get("note") else ""))
    if not results["enforce_targets"]:
        print("  (smoke run: figures are too short to judge; targets shown in parentheses, not enforced)")


def write_results(results: dict, directory: Path, prefix: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(results["started_at"]))
    path = directory / f"{prefix}{stamp}.json"
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    shutil.copyfile(path, directory / f"{prefix}latest.json")
    return path
