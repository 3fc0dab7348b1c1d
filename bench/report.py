"""Targets, the printed tables, and the JSON result files."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"

THROUGHPUT_RPS = 5000
ADDED_P50_MS = 0.25  # open loop at one connection, the reference surface (non-streaming Messages)
ADDED_P99_MS = 0.5
OTHER_SURFACE_MARGIN_MS = 0.1  # every other surface: added p50 / p99 at most the reference's plus this
LONG_STREAMS_P50_RATIO = 1.2  # p50 duration of the long streams through keystile against the upstream's own
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
    targets += latency_targets(results.get("latency") or {})
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
    targets += long_stream_targets(results.get("long_streams"))
    startup = results.get("startup", {}).get("seconds", [])
    targets.append(_target("ready after start (slowest launch)", max(startup) if startup else None, READY_SECONDS, "s"))
    errors = sum(run.get("error_count", 0) for run in results.get("runs", []))
    if soak:
        errors += sum(soak["load"]["errors"].values())
    for entry in (results.get("latency") or {}).values():
        errors += sum(sum(entry[via]["errors"].values()) for via in ("direct", "floor", "keystile") if via in entry)
    targets.append({"name": "every response 2xx, no socket errors", "value": errors, "limit": 0, "unit": "errors",
                    "pass": errors == 0})
    return targets


def latency_targets(latency: dict) -> list[dict]:
    """The reference surface (the first measured: non-streaming Messages) against fixed limits; every
    other surface against the reference's own figure plus ``OTHER_SURFACE_MARGIN_MS``."""
    targets: list[dict] = []
    entries = list(latency.values())
    if not entries:
        return targets
    reference = entries[0]
    for entry in entries:
        name = entry["scenario"] + (" (time to first byte)" if entry["metric"] == "ttfb_us" else "")
        sustained = entry["direct"]["sustained"] and entry["keystile"]["sustained"]
        for q, limit in (("p50", ADDED_P50_MS), ("p99", ADDED_P99_MS)):
            if entry is not reference:
                limit = reference["added_ms"][q] + OTHER_SURFACE_MARGIN_MS
            target = _target(f"added {q} latency at 1 connection, {name}", entry["added_ms"][q], limit, "ms")
            if entry is not reference:
                target["note"] = f"{reference['scenario']}'s {reference['added_ms'][q]:+.3f} ms + {OTHER_SURFACE_MARGIN_MS:g} ms"
            if not sustained:
                target["pass"] = False
                target["note"] = "the open-loop rate was not sustained: latency grew without bound"
            targets.append(target)
    return targets


def long_stream_targets(streams: dict | None) -> list[dict]:
    if not streams:
        return []
    direct, through, rss = streams["direct"], streams["keystile"], streams["rss_mb"]
    n = streams["streams"]
    targets = [{"name": f"long streams: all {n:,} concurrent streams through one worker complete",
                "value": through["completed"] == n, "limit": True, "unit": "", "pass": through["completed"] == n,
                "note": f"{through['completed']:,} of {n:,} completed"}]
    through_p50 = through["duration_s"].get("p50")
    direct_p50 = direct["duration_s"].get("p50")
    ratio = through_p50 / direct_p50 if through_p50 and direct_p50 else None
    target = _target("long streams: p50 duration through keystile / the upstream's own", ratio, LONG_STREAMS_P50_RATIO, "×")
    if ratio is not None:
        target["note"] = f"{through_p50:.3f} s against {direct_p50:.3f} s direct"
    targets.append(target)
    target = _target("long streams: worker RSS afterwards above its baseline", rss["after"] - rss["before"],
                     rss["return_allowance_mb"], "MB")
    target["note"] = f"{rss['before']:.1f} → peak {rss['peak']:.1f} → {rss['after']:.1f} MB"
    targets.append(target)
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

    print_latency(results)

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

    print_search(results.get("search"), results.get("pinning") or {})

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

    print_long_streams(results.get("long_streams"))

    startup = results.get("startup")
    if startup:
        print("\n== Startup: launch of `keystile serve` until /health/readiness answers 200 ==")
        print("  " + ", ".join(f"{s:.2f} s" for s in startup["seconds"]) + "  (first on a fresh database)")

    spend = results.get("spend")
    if spend:
        print(f"\nSpend accounting was on: the benchmark key spent ${spend['key_spend_usd']:.4f} "
              f"(rpm {spend['rpm_limit']:,}, tpm {spend['tpm_limit']:,}, parallel {spend['max_parallel_requests']:,}, "
              f"budget ${spend['max_budget']:,.0f} — all checked on every request, none reached).")

    phases = results.get("phase_seconds")
    if phases:
        total = results["finished_at"] - results["started_at"]
        print(f"\nTime taken: {total:.0f} s (" + ", ".join(f"{name} {seconds:g} s" for name, seconds in phases.items()) + ")")

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


def _q(value_us: float) -> str:
    return f"{value_us / 1000:.3f}"


def print_latency(results: dict) -> None:
    latency = results.get("latency")
    if not latency:
        return
    settings = results["settings"]
    print(f"\n== Added latency at one connection: open loop, {settings['latency_rate']:,.0f} req/s, "
          f"{settings['latency_requests']:,} requests per run; each latency from the request's intended send time "
          "(coordinated-omission aware); streams: time to the first body byte ==")
    header = (f"{'scenario':<17}{'via':<10}{'p50 ms':>9}{'p90':>9}{'p99':>9}{'p99.9':>9}{'max':>9}"
              f"{'µs CPU/req':>12}{'gw CPU':>8}{'other':>7}{'errors':>7}")
    print(header)
    print("-" * len(header))
    for name, entry in latency.items():
        metric = entry["metric"]
        for via in ("direct", "floor", "keystile"):
            run = entry.get(via)
            if run is None:
                continue
            q = run[metric]
            cpu = f"{run['gateway_cpu_us_per_request']:.0f}" if via != "direct" else "-"
            gw = _pct(run["gateway_cpu_percent"]) if via != "direct" else "-"
            flag = "" if run["sustained"] else "  rate not sustained"
            print(f"{name if via == 'direct' else '':<17}{via:<10}{_q(q['p50']):>9}{_q(q['p90']):>9}{_q(q['p99']):>9}"
                  f"{_q(q['p99.9']):>9}{_q(q['max']):>9}{cpu:>12}{gw:>8}{_pct(run['other_processes_cpu_percent']):>7}"
                  f"{sum(run['errors'].values()):>7}{flag}")
        a = entry["added_ms"]
        print(f"{'':<17}{'added':<10}{a['p50']:>+9.3f}{a['p90']:>+9.3f}{a['p99']:>+9.3f}{a['p99.9']:>+9.3f}{a['max']:>+9.3f}")
    runs = [entry[via] for entry in latency.values() for via in ("direct", "floor", "keystile") if via in entry]
    late_p99 = max(r["client_lateness_us"]["p99"] for r in runs)
    late_max = max(r["client_lateness_us"]["max"] for r in runs)
    late_p50 = max(r["client_lateness_us"]["p50"] for r in runs)
    cpu = max(r["client_cpu_us_per_request"] for r in runs)
    share = max(r["client_cpu_percent"] for r in runs)
    print("   added: keystile's percentile minus direct's (the same request straight to the mock, same rate, same client);\n"
          "   floor: a do-nothing ASGI app on uvicorn with keystile's settings; µs CPU/req, gw CPU: the server worker's.\n"
          f"   the load client itself (bench.openloop, one process): up to {cpu:.0f} µs CPU per request ({share:.0f}% of a core); "
          f"it sent requests late, after they could\n   have gone, by p50 {late_p50:.0f} / p99 {late_p99:.0f} / max "
          f"{late_max:.0f} µs (worst run) — in the direct runs as in keystile's, so it cancels in the added figures.")
    noisy = [r for r in runs if r["other_processes_cpu_percent"] > NOISY_OTHER_PERCENT]
    if noisy:
        print(f"   WARNING: other processes used more than {NOISY_OTHER_PERCENT}% of a core during {len(noisy)} of {len(runs)} "
              "runs: the tail figures are the machine's as much as keystile's.")
    slow = [f"{name}/{via}" for name, entry in latency.items() for via in ("direct", "floor", "keystile")
            if via in entry and not entry[via]["sustained"]]
    if slow:
        print(f"   RATE NOT SUSTAINED in {', '.join(slow)}: requests fell more than {settings['latency_max_lag']:g} s behind "
              "their schedule; the run stopped there (figures cover the requests answered until then).")


def print_search(search: dict | None, pinning: dict) -> None:
    if not search:
        return
    bounds = search["bounds_ms"]
    print(f"\n== Throughput at a latency bound: non-streaming Messages, open loop, {search['connections']} connections, "
          f"{search['step_seconds']:g} s per step; the highest rate at which added p99 stayed under the bound ==")
    print(f"{'workers':<22}" + "".join(f"{f'added p99 ≤ {b:g} ms':>22}" for b in bounds) + "   steps (rate: added p99 ms)")
    for workers, found in search["workers"].items():
        cores = found.get("gateway_cpus")
        label = f"{workers} (CPU {','.join(map(str, cores))})" if cores else workers
        cells = []
        for result in found["results"]:
            if result["below_start"]:
                cells.append(f"< {found['start']:,.0f} req/s")
            elif result["unbounded"]:
                cells.append(f"≥ {result['rate']:,.0f} req/s")
            else:
                cells.append(f"{result['rate']:,.0f} req/s")
        steps = ", ".join(f"{s['rate']:,.0f}: {s['added_p99_ms']:+.2f}" + ("" if s["sustained"] else " (not sustained)")
                          + (f" ({s['errors']} errors)" if s["errors"] else "") for s in found["steps"])
        print(f"{label:<22}" + "".join(f"{c:>22}" for c in cells) + f"   {steps}")
    print("   each step: the same rate direct to the mock and through keystile; a step fails a bound when added p99 is over\n"
          "   it, a request failed, or the schedule fell 0.5 s behind. ≥: no failing rate found below the ceiling or in the\n"
          "   time budget; the rate after a figure is the lowest that failed.")
    load = set(pinning.get("load_cpus") or ()) | set(pinning.get("client_cpus") or ())
    shared = [w for w, found in search["workers"].items() if load & set(found.get("gateway_cpus") or ())]
    if shared:
        print(f"   note: with {', '.join(shared)} workers keystile has more workers than cores of its own here, so it shares the\n"
              "   load generator's and the mock's core: that figure understates what the workers do on cores of their own.")


def print_long_streams(streams: dict | None) -> None:
    if not streams:
        return
    print(f"\n== Many long streams: {streams['streams']:,} concurrent streams, each {streams['pauses']} pauses of "
          f"{streams['gap_s'] * 1000:.0f} ms (≈{streams['nominal_duration_s']:.1f} s), all sent at once; keystile: one worker ==")
    print(f"{'':<10}{'completed':>14}{'duration p50':>14}{'p90':>10}{'p99':>10}{'max':>10}{'first byte p50':>16}{'p99':>10}"
          f"{'events':>8}{'connect':>9}{'client CPU':>12}  failures")
    for via in ("direct", "keystile"):
        r = streams[via]
        d, t = r["duration_s"], r["ttfb_s"]
        failures = []
        if r["connect_errors"]:
            failures.append("connect " + ", ".join(f"{k} {v}" for k, v in r["connect_errors"].items()))
        if r["failed_status"]:
            failures.append("status " + ", ".join(f"{k}×{v}" for k, v in r["failed_status"].items()))
        if r["lost"]:
            failures.append(f"{r['lost']} cut off")
        if r["incomplete"]:
            failures.append(f"{r['incomplete']} still open at the timeout")
        if r.get("listen_overflows"):
            failures.append(f"{r['listen_overflows']} listen-queue overflows")

        def s(v: float | None) -> str:
            return "-" if v is None else f"{v:.3f} s"

        print(f"{via:<10}{r['completed']:>8,}/{r['streams']:<5,}{s(d.get('p50')):>14}{s(d.get('p90')):>10}{s(d.get('p99')):>10}"
              f"{s(d.get('max')):>10}{s(t.get('p50')):>16}{s(t.get('p99')):>10}{r['events_per_stream'].get('p50', 0):>8.0f}"
              f"{r['connect_seconds']:>8.1f}s{r['client_cpu_s']:>11.2f}s  {'; '.join(failures) or 'none'}")
    rss, fds = streams["rss_mb"], streams["open_fds"]
    k = streams["keystile"]
    print(f"   keystile worker RSS: {rss['before']:.1f} MB before, {rss['peak']:.1f} MB at peak, {rss['after']:.1f} MB "
          f"after ({rss['after_waited_s']:g} s after the last stream ended); open file descriptors {fds['before']:,} → "
          f"peak {fds['peak']:,} → {fds['after']:,}; worker CPU {k['gateway_worker_cpu_s']:.1f} s "
          f"({k['gateway_cpu_us_per_request']:.0f} µs per stream), mock {k['mock_cpu_us_per_request']:.0f} µs per stream;\n"
          f"   all requests written by the client within {k['send_spread_ms']:.0f} ms (each stream timed from its own send); "
          f"the client's open-files limit {k['open_files_limit']:,}.\n"
          "   direct: the same streams straight to the mock — the upstream's own duration, what keystile is held to.")


def write_results(results: dict, directory: Path, prefix: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(results["started_at"]))
    path = directory / f"{prefix}{stamp}.json"
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    shutil.copyfile(path, directory / f"{prefix}latest.json")
    return path
