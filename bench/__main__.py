"""``python -m bench`` (``make bench``): keystile against a fast mock upstream, on this machine.

    python -m bench              the full benchmark (about 6 minutes)
    python -m bench --quick      shorter runs, same phases (about 2 minutes)
    python -m bench --smoke      about half a minute; part of ``make test``; targets not enforced
    python -m bench --profile    64-connection Messages load with py-spy on the keystile worker

Results: a table on stdout, and ``bench/results/<timestamp>.json`` + ``latest.json``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

from bench import load, machine, profile, report, services
from bench.load import LoadSpec
from bench.runner import Bench, Options, make_workdir, pin_self, remove_workdir
from bench.scenarios import SCENARIOS

PRESETS = {
    "full": Options(mode="full"),
    "quick": Options(mode="quick", duration=2.0, warmup=0.5, ttfb_streams=100, soak_requests=20_000, startup_runs=2,
                     rss_interval=1.0, latency_requests=5_000, latency_warmup=0.5, search_seconds=1.0,
                     search_budget=20.0, search_refine=1, long_streams=2_000, long_stream_settle=5.0),
    "smoke": Options(mode="smoke", duration=1.0, warmup=0.0, ttfb_streams=10, pacing_streams=1,
                     soak_requests=2_000, soak_timeout=30.0, rss_interval=0.2, startup_runs=1,
                     latency_scenarios=("messages", "messages-stream"), latency_requests=300, latency_warmup=0.1,
                     search_seconds=0.3, search_warmup=0.1, search_start=200.0, search_ceiling=200.0,
                     search_budget=10.0, search_refine=1,
                     long_streams=100, long_stream_gap=0.05, long_stream_settle=1.0),
    "profile": Options(mode="profile", floor=False),
}
TIME_LIMITS = {"full": 1200.0, "quick": 600.0, "smoke": 90.0, "profile": 300.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="shorter runs (2 s each, 20,000-request soak)")
    mode.add_argument("--smoke", action="store_true",
                      help="every phase in miniature (about half a minute); targets printed but not enforced")
    mode.add_argument("--profile", action="store_true", help="py-spy on the keystile worker under 64-connection Messages load")
    p.add_argument("--duration", type=float, help="seconds per closed-loop load run (full: 4)")
    p.add_argument("--warmup", type=float, help="seconds of unmeasured load before each run (full: 1)")
    p.add_argument("--connections", help="closed loop: comma-separated connection counts (default 64)")
    p.add_argument("--scenarios", help=f"closed loop: comma-separated, from {', '.join(SCENARIOS)} "
                                       "(default messages,messages-stream,chat)")
    p.add_argument("--latency-scenarios", help="open loop at one connection: comma-separated, the first is the reference "
                                               "(default messages,chat,messages-stream,chat-stream,responses-stream,gemini-stream)")
    p.add_argument("--latency-rate", type=float, help="open loop at one connection: requests per second (default 1000)")
    p.add_argument("--latency-requests", type=int, help="open loop at one connection: measured requests per run "
                                                        "(full: 20000; 0 skips the phase)")
    p.add_argument("--search-workers", help="throughput at a latency bound: comma-separated worker counts "
                                            "(default 1,2; 0 skips the search)")
    p.add_argument("--search-budget", type=float, help="throughput at a latency bound: seconds per worker count (full: 30)")
    p.add_argument("--long-streams", type=int, help="concurrent long streams through one worker (full: 5000; 0 skips)")
    p.add_argument("--ttfb-streams", type=int, help="sequential streams for time to first byte (full: 200)")
    p.add_argument("--soak-requests", type=int, help="requests in the soak (full: 100000; 0 skips it)")
    p.add_argument("--soak-timeout", type=float, help="upper bound on the soak's duration in seconds (full: 300)")
    p.add_argument("--upstream-latency-ms", type=float, default=0.0, help="fixed mock upstream latency (default 0)")
    p.add_argument("--coalesce-stream", action="store_true",
                   help="mock writes each stream in one write (default: one write per event, like a real provider)")
    p.add_argument("--workers", type=int, default=1, help="keystile worker processes (default 1)")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                   help="before each measured run wait up to S s until other processes use < 15%% of a core")
    p.add_argument("--no-floor", action="store_true", help="skip the floor calibration (a do-nothing ASGI app on uvicorn)")
    p.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                   help="auto: wrk (apt-get installed if missing and possible), else the Python generator")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--profile-seconds", type=int, default=10, help="profile mode: seconds of load (default 10)")
    p.add_argument("--profile-rate", type=int, default=250, help="profile mode: py-spy samples per second (default 250)")
    p.add_argument("--py-spy-args", default="--gil --nonblocking",
                   help="profile mode: extra py-spy record options (default: --gil --nonblocking)")
    p.add_argument("--results-dir", type=Path, default=report.RESULTS_DIR, help="where JSON results go (default bench/results)")
    p.add_argument("--time-limit", type=float, help="abort the whole benchmark after this many seconds")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when a target fails")
    p.add_argument("--keep-workdir", action="store_true", help="keep the temporary directory (configs, logs, database)")
    return p.parse_args(argv)


def build_options(args: argparse.Namespace) -> Options:
    mode = "quick" if args.quick else "smoke" if args.smoke else "profile" if args.profile else "full"
    o = replace(PRESETS[mode])
    for name in ("duration", "warmup", "ttfb_streams", "soak_requests", "soak_timeout"):
        value = getattr(args, name)
        if value is not None:
            setattr(o, name, value)
    if args.connections:
        o.connections = tuple(int(c) for c in args.connections.split(","))
    if args.scenarios:
        o.scenarios = _scenario_list(args.scenarios)
    if args.latency_scenarios:
        o.latency_scenarios = _scenario_list(args.latency_scenarios)
    if args.latency_rate is not None:
        o.latency_rate = max(1.0, args.latency_rate)
    if args.latency_requests is not None:
        o.latency_requests = max(0, args.latency_requests)
    if args.search_workers:
        o.search_workers = tuple(w for w in (int(x) for x in args.search_workers.split(",")) if w > 0)
    if args.search_budget is not None:
        o.search_budget = args.search_budget
    if args.long_streams is not None:
        o.long_streams = max(0, args.long_streams)
    o.upstream_latency_ms = args.upstream_latency_ms
    o.coalesce_stream = args.coalesce_stream
    o.workers = args.workers
    o.floor = o.floor and not args.no_floor
    o.wait_quiet = args.wait_quiet if mode != "profile" else 0.0  # py-spy starts on a fixed schedule
    o.profile_seconds = max(3, args.profile_seconds)
    o.profile_rate = args.profile_rate
    return o


def _scenario_list(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown:
        raise SystemExit(f"bench: unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    return names


class _TimeLimit(Exception):
    pass


def _on_alarm(signum: int, frame: object) -> None:
    raise _TimeLimit()


def _on_term(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    o = build_options(args)
    time_limit = args.time_limit or TIME_LIMITS[o.mode] + 20 * o.wait_quiet
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_term)
    signal.alarm(int(time_limit))

    pinning = services.plan_pinning(not args.no_pin, max((o.workers, *o.search_workers)))
    pin_self(pinning)
    open_files = services.raise_open_files_limit()
    workdir = make_workdir()
    loadgen = load.choose(args.loadgen, pinning, workdir, install=o.mode != "smoke")
    described = machine.describe(loadgen.name)
    described["open_files_limit"] = open_files[0]
    print(f"keystile benchmark ({o.mode}) — {machine.summary_line(described)}")
    print(f"pinning: {pinning.describe()}; open files limit {open_files[0]:,} (inherited by every process started)")
    print(f"gateway: keystile serve --workers {o.workers}, virtual-key auth + rpm/tpm/parallel limits + budget + spend "
          f"accounting on; upstream: mock at {o.upstream_latency_ms:g} ms latency"
          f"{', coalesced streams' if o.coalesce_stream else ''}", flush=True)
    bench = Bench(o, pinning, loadgen, workdir)
    failed = True
    try:
        if o.mode == "profile":
            code = run_profile(bench, args, described, pinning)
        else:
            code = run_benchmark(bench, args, described, pinning)
        failed = False
        return code
    except _TimeLimit:
        print(f"\nbench: stopped at the time limit of {time_limit:.0f} s (see --time-limit)", file=sys.stderr)
        return 3
    finally:
        signal.alarm(0)
        bench.stop()
        services.stop_everything()
        if failed or args.keep_workdir:
            print(f"bench: configs and logs kept in {workdir}", file=sys.stderr)
        else:
            remove_workdir(workdir)


def _progress(run: dict) -> None:
    print(f"  {run['scenario']:<16} {run['connections']:>3} conns  {run['via']:<9} {run['rps']:>9,.0f} req/s  "
          f"p50 {run['latency_us']['p50'] / 1000:.3f} ms  p99 {run['latency_us']['p99'] / 1000:.3f} ms", flush=True)


def _latency_progress(scenario: str, via: str, run: dict, metric: str) -> None:
    q = run[metric]
    late = "" if run["sustained"] else "  RATE NOT SUSTAINED"
    print(f"  {scenario:<16} {via:<9} {run['requests']:>7,} requests  p50 {q['p50'] / 1000:.3f}  p99 {q['p99'] / 1000:.3f}  "
          f"p99.9 {q['p99.9'] / 1000:.3f}  max {q['max'] / 1000:.3f} ms{late}", flush=True)


def _search_progress(workers: int, step) -> None:
    state = "" if step.sustained else ", rate not sustained"
    errors = f", {step.errors} errors" if step.errors else ""
    print(f"  {workers} worker(s) at {step.rate:>7,.0f} req/s: added p99 {step.added_p99_ms:+.3f} ms{state}{errors}", flush=True)


def run_benchmark(bench: Bench, args: argparse.Namespace, described: dict, pinning: services.Pinning) -> int:
    o = bench.o
    started_at = time.time()
    phases: dict[str, float] = {}

    def timed(name: str, run):
        began = time.monotonic()
        try:
            return run()
        finally:
            phases[name] = round(time.monotonic() - began, 1)

    print("\nstarting the mock upstreams and keystile ...", flush=True)
    first_start = timed("start", bench.start)
    print(f"  keystile ready {first_start['seconds']:.2f} s after launch; worker pid(s) {bench.gateway.worker_pids}", flush=True)
    rss_start = bench.rss_mb()
    print("load runs (closed loop):", flush=True)
    runs = timed("closed loop", lambda: bench.load_runs(_progress))
    latency = None
    if o.latency_requests > 0 and o.latency_scenarios:
        print(f"added latency at one connection (open loop, {o.latency_rate:,.0f} req/s, {o.latency_requests:,} requests "
              "per run):", flush=True)
        latency = timed("latency", lambda: bench.latency(_latency_progress))
    print("time to first byte of streams ...", flush=True)
    ttfb = timed("ttfb", bench.ttfb)
    print("pacing (no buffering) ...", flush=True)
    pacing = timed("pacing", bench.pacing)
    search = None
    if o.search_workers:
        print(f"throughput at a latency bound (open loop, {o.search_connections} connections, "
              f"about {o.search_budget:.0f} s per worker count):", flush=True)
        search = timed("search", lambda: bench.search(_search_progress))
    soak = None
    if o.soak_requests > 0:
        print(f"soak: {o.soak_requests:,} requests ...", flush=True)
        soak = timed("soak", bench.soak)
    long_streams = None
    if o.long_streams > 0:
        print(f"many long streams: {o.long_streams:,} at once, direct then through one keystile worker ...", flush=True)
        long_streams = timed("long streams", bench.long_streams)
    rss_end = bench.rss_mb()
    spend = bench.spend()
    print("startup time of further launches ...", flush=True)
    startup = [first_start["seconds"], *timed("restarts", bench.restarts)]

    results = {
        "format": 1,
        "mode": o.mode,
        "started_at": started_at,
        "finished_at": time.time(),
        "phase_seconds": phases,
        "machine": described,
        "pinning": pinning.to_json(),
        "settings": {k: v for k, v in asdict(o).items() if k != "extra"},
        "enforce_targets": o.mode != "smoke",
        "runs": runs,
        "latency": latency,
        "ttfb": ttfb,
        "pacing": pacing,
        "search": search,
        "soak": soak,
        "long_streams": long_streams,
        "startup": {"seconds": startup},
        "rss_mb": {"after_start": rss_start, "at_end": rss_end},
        "spend": spend,
    }
    for run in runs:
        run["error_count"] = sum(run["errors"].values())
    open_loop = [entry[via] for entry in (latency or {}).values() for via in ("direct", "floor", "keystile") if via in entry]
    results["noisy_runs"] = sum(1 for r in runs + open_loop if r["other_processes_cpu_percent"] > report.NOISY_OTHER_PERCENT)
    results["targets"] = report.evaluate(results)
    report.print_report(results)
    path = report.write_results(results, args.results_dir)
    print(f"\nresults: {path} (and {path.with_name('latest.json')})")
    failures = [t for t in results["targets"] if t["pass"] is False]
    return 1 if (args.strict and failures and results["enforce_targets"]) else 0


def run_profile(bench: Bench, args: argparse.Namespace, described: dict, pinning: services.Pinning) -> int:
    o = bench.o
    py_spy = profile.find_py_spy(install=True)
    if py_spy is None:
        print("bench: py-spy is not available and could not be installed (pip install py-spy)", file=sys.stderr)
        return 2
    print("\nstarting the mock upstreams and keystile ...", flush=True)
    bench.start()
    worker = bench.gateway.worker_pids[0]
    request = SCENARIOS["messages"].through_gateway(bench.key)
    spec = LoadSpec(bench.gateway.port, (request,), 64, float(o.profile_seconds))
    bench.loadgen.run(replace(spec, duration=1.0))  # warm-up

    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    speedscope = args.results_dir / f"profile-{stamp}.speedscope.json"
    collapsed = args.results_dir / f"profile-{stamp}.collapsed.txt"
    summary_path = args.results_dir / f"profile-{stamp}.summary.json"
    outcome: dict = {}

    def drive() -> None:
        try:
            outcome["load"], outcome["costs"] = bench.measure(spec)
        except Exception as exc:  # reported below
            outcome["error"] = exc

    print(f"profiling: {o.profile_seconds} s of 64-connection non-streaming Messages load; "
          f"py-spy at {o.profile_rate} Hz on worker {worker} ...", flush=True)
    driver = threading.Thread(target=drive, name="bench-load", daemon=True)
    driver.start()
    time.sleep(1.0)
    spy = profile.record(py_spy, worker, o.profile_seconds - 2, o.profile_rate, speedscope, args.py_spy_args.split())
    spy_out, _ = spy.communicate(timeout=o.profile_seconds + 60)
    driver.join(o.profile_seconds + 60)
    if "error" in outcome:
        raise outcome["error"]
    if spy.returncode != 0 or not speedscope.exists():
        print(f"bench: py-spy failed (exit {spy.returncode}):\n{spy_out}", file=sys.stderr)
        return 2
    stacks = profile.load_stacks(speedscope)
    profile.write_collapsed(stacks, collapsed)
    summary = profile.summarise(stacks, top=40)
    result, costs = outcome["load"], outcome["costs"]
    print(f"\nunder the profiler: {result.rps:,.0f} req/s, p50 {result.ms('p50'):.3f} ms, p99 {result.ms('p99'):.3f} ms, "
          f"{costs['gateway_cpu_us_per_request']:.0f} µs worker CPU/request, {sum(result.errors.values())} errors "
          f"(sampling slows the worker; compare with the unprofiled run)")
    print("\nkeystile worker threads by CPU during the profile (from /proc, not sampled):")
    for thread in costs["gateway_worker_threads"]:
        if thread["cpu_percent"] >= 0.5:
            print(f"  {thread['cpu_percent']:5.1f}% of a core  {thread['us_per_request']:6.0f} µs/request  {thread['name']} ({thread['tid']})")
    profile.print_summary(summary, args.py_spy_args)
    summary_path.write_text(json.dumps(
        {"machine": described, "pinning": pinning.to_json(), "load": result.to_json(), "costs": costs,
         "py_spy_rate": o.profile_rate, "summary": summary}, indent=2, ensure_ascii=False) + "\n")
    print(f"\nprofile: {speedscope} (open in https://www.speedscope.app)\n         {collapsed} (flamegraph.pl / speedscope)"
          f"\n         {summary_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
