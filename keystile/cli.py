"""The ``keystile`` command: serve, manage keys on the store, check configs, migrate, report spend."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from typing import Any, Sequence

from keystile import __version__
from keystile.config import DEFAULT_CONFIG_NAME, ConfigError, Settings, load_settings
from keystile.config.model import DEFAULT_HOST, DEFAULT_PORT

EXIT_CONFIG = 2


def _settings(path: str | None) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        sys.stderr.write("keystile: the configuration has problems:\n")
        for problem in exc.problems:
            sys.stderr.write(f"  {problem}\n")
        raise SystemExit(EXIT_CONFIG) from None


def _store(settings: Settings):  # type: ignore[no-untyped-def]
    from keystile.store.repository import Store

    return Store.open(settings.database_url)


# --- serve -----------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from dataclasses import replace

    settings = _settings(args.config)
    server = replace(
        settings.server,
        host=args.host or settings.server.host,
        port=args.port if args.port is not None else settings.server.port,
        workers=args.workers or settings.server.workers,
    )
    settings = replace(settings, server=server)
    for warning in settings.warnings:
        sys.stderr.write(f"keystile: warning: {warning}\n")
    if server.workers > 1 and not settings.redis_url:
        sys.stderr.write(
            f"keystile: warning: {server.workers} workers and no redis_url: each worker counts rpm, tpm and "
            f"parallel limits on its own, so a key can get up to {server.workers}x its limits "
            "(set redis_url to share the counts; budgets and spend are shared through the database)\n"
        )

    # Several workers share their Prometheus samples through files. prometheus_client picks its
    # value store once, at import, so the variable is set before anything imports it (the app,
    # below); set later, forked workers kept their samples in memory and /metrics was empty.
    metrics_dir = None  # the directory, when this command made it
    if server.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="keystile-metrics-")
    try:
        return _serve(args, settings)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from keystile.store.database import DatabaseUnavailable
    from keystile.store.migrations import SchemaTooNew

    from keystile.server.protocol import ConnectionTable, http_bounds, raise_fd_limit

    server = settings.server
    try:
        generated = asyncio.run(_prepare_store(settings))
    except SchemaTooNew as exc:
        sys.stderr.write(f"keystile: {exc}\n")
        return 1
    except DatabaseUnavailable as exc:
        sys.stderr.write(f"keystile: cannot reach the database at {_safe_url(settings.database_url)}: {exc}\n")
        return 1
    # Connections past the file-descriptor limit are reset by the kernel before keystile can
    # answer: take all the descriptors the system allows, and cap connections below them.
    fd_limit = raise_fd_limit()
    bounds = http_bounds(server, fd_limit)
    if bounds.max_connections < server.max_connections:
        sys.stderr.write(
            f"keystile: warning: server.max_connections lowered from {server.max_connections} to {bounds.max_connections} "
            f"per worker: this process may open only {fd_limit} files (raise the limit with ulimit -n or LimitNOFILE=)\n"
        )
    _print_banner(settings, generated)

    os.environ["KEYSTILE_CONFIG"] = os.path.abspath(args.config) if args.config else ""
    os.environ["KEYSTILE_WORKERS"] = str(server.workers)

    import uvicorn

    # uvicorn stops gracefully on SIGTERM or SIGINT (requests finish, spend is flushed), then
    # raises the signal again so the process dies of it (exit status -15/143). The stop was
    # clean, so keystile absorbs that second delivery and exits 0, as service managers expect.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)
    # uvicorn with uvloop and httptools, one event loop per worker process and no thread
    # hand-offs: measured against granian on keystile itself (README, "why these
    # dependencies"), it answers sooner at one connection and serves as many at 64.
    uvicorn.run(
        "keystile.server.app:create_app",
        factory=True,
        host=server.host,
        port=server.port,
        workers=server.workers if server.workers > 1 else None,
        loop="uvloop",
        # uvicorn's httptools protocol, with header-size, read-deadline and connection bounds
        # enforced before the application runs (keystile/server/protocol.py).
        http=ConnectionTable(bounds).protocol_factory(),  # type: ignore[arg-type]
        lifespan="on",
        access_log=False,
        proxy_headers=False,  # keystile never reads the client address; skips a middleware per request
        backlog=2048,
        timeout_keep_alive=server.keep_alive_timeout,  # type: ignore[arg-type]
        # Requests still running after this are cut off: the client gets its format's
        # error, the request is charged what it used, then the spend is flushed.
        timeout_graceful_shutdown=server.graceful_shutdown,  # type: ignore[arg-type]
    )
    return 0


async def _prepare_store(settings: Settings) -> str | None:
    """Migrate and settle the master key once, before any worker starts (workers would race)."""
    from keystile.server.app import ensure_master_key

    store = await _store(settings)
    try:
        _, generated = await ensure_master_key(store, settings)
    finally:
        await store.close()
    return generated


def _print_banner(settings: Settings, generated: str | None) -> None:
    host = settings.server.host
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown_host}:{settings.server.port}"
    if os.environ.get("KEYSTILE_MASTER_KEY"):
        source = "from the KEYSTILE_MASTER_KEY environment variable"
    elif settings.master_key:
        source = f"from {settings.source}"
    elif generated:
        source = "generated just now (shown below, once)"
    else:
        source = "generated on an earlier first start (only its hash is stored)"
    key = generated or "$KEYSTILE_KEY"
    model = settings.deployments[0].model_name if settings.deployments else "MODEL"
    lines = [
        "",
        f"  keystile {__version__} — {url}",
        f"  config:      {settings.source or DEFAULT_CONFIG_NAME} ({len(settings.model_names)} models: {', '.join(settings.model_names[:6])})",
        f"  database:    {_safe_url(settings.database_url)}",
        *([f"  redis:       {_safe_url(settings.redis_url)} (shared rate limits, budgets, key invalidation)"] if settings.redis_url else []),
        f"  master key:  {source}",
    ]
    if generated:
        lines += ["", "  master key (save it now; it will not be shown again):", "", f"    {generated}"]
    else:
        lines += [
            "",
            "  Create a virtual key:  .venv/bin/keystile keys create --alias me"
            + (f" --config {settings.source}" if settings.source != DEFAULT_CONFIG_NAME else ""),
            "  then: export KEYSTILE_KEY=<the key it prints>",
        ]
    lines += [
        "",
        "  Try it:",
        f"    curl -s {url}/v1/messages -H 'x-api-key: {key}' -H 'anthropic-version: 2023-06-01' \\",
        "      -H 'content-type: application/json' \\",
        f"      -d '{{\"model\": \"{model}\", \"max_tokens\": 64, \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'",
        "",
        "  Claude Code:",
        f"    ANTHROPIC_BASE_URL={url} ANTHROPIC_API_KEY={key} claude",
        "",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _safe_url(url: str) -> str:
    """A database URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


# --- keys ------------------------------------------------------------------------------------


def _key_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if args.alias is not None:
        fields["key_alias"] = args.alias
    if args.models:
        fields["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    for name in ("max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit", "max_parallel_requests", "user_id", "team_id"):
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    return fields


def cmd_keys(args: argparse.Namespace) -> int:
    return asyncio.run(_keys(args))


# keys create's options by the /key/generate field they fill, where the names differ.
_KEY_FLAGS = {"rpm_limit": "--rpm", "tpm_limit": "--tpm", "max_parallel_requests": "--parallel", "key_alias": "--alias",
              "user_id": "--user", "team_id": "--team"}


async def _keys(args: argparse.Namespace) -> int:
    from keystile.auth import generate_key, hash_key
    from keystile.credentials import mask
    from keystile.errors import GatewayError
    from keystile.server.admin import new_key_fields
    from keystile.store.keys import build_key

    if args.action == "create":
        data = _key_fields(args)
        if args.duration is not None:
            data["duration"] = args.duration
        try:
            fields, duration = new_key_fields(data)
        except GatewayError as exc:
            field = exc.param or ""
            flag = _KEY_FLAGS.get(field, "--" + field.replace("_", "-"))
            sys.stderr.write(f"keystile: {flag}: {exc.message.removeprefix(field + ': ')}\n")
            return 2
    settings = _settings(args.config)
    store = await _store(settings)
    try:
        if args.action == "create":
            raw = generate_key()
            record = build_key(raw, fields, time.time(), duration)
            if record.team_id and await store.get_team(record.team_id) is None:
                sys.stderr.write(f"keystile: team {record.team_id!r} does not exist\n")
                return 1
            await store.insert_key(record)
            print(raw)
            sys.stderr.write(f"created key {record.key_name} (alias {record.key_alias or '-'}); this is the only time it is shown\n")
            return 0
        if args.action == "list":
            keys = await store.list_keys(limit=100_000)
            rows = [
                (k.key_name, k.key_alias or "-", ",".join(k.models) or "all", f"{k.spend:.4f}",
                 "-" if k.max_budget is None else f"{k.max_budget:g}", "blocked" if k.blocked else "active", k.token_hash[:12])
                for k in keys
            ]
            _table(("key", "alias", "models", "spend", "budget", "state", "hash"), rows)
            return 0
        ref = args.key
        token_hash = ref if len(ref) == 64 and all(c in "0123456789abcdef" for c in ref) else hash_key(ref)
        key = await store.get_key(token_hash)
        if key is None:
            found = await store.find_key_by_alias(ref)
            if found is None:
                sys.stderr.write(f"keystile: no key matches {mask(ref) if ref.startswith('sk-') else ref!r}\n")
                return 1
            key = found
        if args.action == "info":
            from keystile.server.admin import _iso  # same rendering as the admin API

            for name in ("key_name", "key_alias", "models", "spend", "max_budget", "budget_duration", "rpm_limit",
                         "tpm_limit", "max_parallel_requests", "blocked", "user_id", "team_id", "token_hash"):
                print(f"{name:22} {getattr(key, name)}")
            print(f"{'expires':22} {_iso(key.expires_at)}")
            print(f"{'created':22} {_iso(key.created_at)}")
            return 0
        if args.action in ("block", "unblock"):
            await store.update_key(key.token_hash, {"blocked": args.action == "block"})
            print(f"{args.action}ed {key.key_name}")
            return 0
        if args.action == "delete":
            await store.delete_keys([key.token_hash])
            print(f"deleted {key.key_name}")
            return 0
    finally:
        await store.close()
    return 2


# --- config, migrate, spend --------------------------------------------------------------------


def cmd_config_check(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.path)
    except ConfigError as exc:
        print(f"{args.path}: {len(exc.problems)} problem(s):")
        for problem in exc.problems:
            print(f"  {problem}")
        return 1
    print(f"{args.path}: OK ({settings.source_format} format)")
    for deployment in settings.deployments:
        base = deployment.api_base or "built-in"
        model = deployment.model or "<the requested name>"
        print(f"  {deployment.model_name:28} → {deployment.provider}:{model}  [{base}]")
    for primary, targets in settings.router.fallbacks:
        print(f"  fallback {primary} → {', '.join(targets)}")
    for warning in settings.warnings:
        print(f"  warning: {warning}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    async def run() -> int:
        from keystile.store.database import open_database
        from keystile.store.migrations import SchemaTooNew, migrate

        settings = _settings(args.config)
        db = await open_database(settings.database_url)
        try:
            applied = await migrate(db)
        except SchemaTooNew as exc:
            sys.stderr.write(f"keystile: {exc}\n")
            return 1
        finally:
            await db.close()
        print(f"applied migrations: {', '.join(map(str, applied))}" if applied else "schema is up to date")
        return 0

    return asyncio.run(run())


def cmd_spend_report(args: argparse.Namespace) -> int:
    async def run() -> int:
        from keystile.durations import parse_duration

        settings = _settings(args.config)
        start = None
        if args.since:
            try:
                start = time.time() - parse_duration(args.since)
            except ValueError as exc:
                sys.stderr.write(f"keystile: --since: {exc}\n")
                return 2
        store = await _store(settings)
        try:
            rows = await store.spend_report(args.by, start=start)
        finally:
            await store.close()
        out = []
        total = 0.0
        for row in rows:
            group, requests, tokens_in, tokens_out, cost = row[:5]
            label = group if group is not None else "-"
            if args.by == "key" and group:
                label = f"{row[5] or '-'} ({group[:12]})"
            out.append((label, str(requests), str(tokens_in or 0), str(tokens_out or 0), f"{cost or 0:.6f}"))
            total += cost or 0.0
        _table((args.by, "requests", "input tokens", "output tokens", "cost (USD)"), out)
        print(f"\ntotal: ${total:.6f}" + (f" since {args.since} ago" if args.since else ""))
        return 0

    return asyncio.run(run())


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


# --- argument parsing --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keystile",
        description="keystile — an LLM gateway: virtual keys, budgets, rate limits and routing for Anthropic and OpenAI clients.",
    )
    parser.add_argument("--version", action="version", version=f"keystile {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    config_help = "config file: keystile YAML or a LiteLLM config.yaml (default: the built-in sample with mock models)"

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help=config_help)
    serve.add_argument("--host", help=f"address to listen on (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, help=f"port to listen on (default {DEFAULT_PORT})")
    serve.add_argument("--workers", type=int, help="worker processes (default 1; use one per core)")
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="manage virtual keys directly on the store")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--alias")
    create.add_argument("--models", help="comma-separated model names this key may use (default: all)")
    create.add_argument("--max-budget", dest="max_budget", type=float)
    create.add_argument("--soft-budget", dest="soft_budget", type=float)
    create.add_argument("--budget-duration", dest="budget_duration", help="budget period, e.g. 1d, 30d")
    create.add_argument("--rpm", dest="rpm_limit", type=int)
    create.add_argument("--tpm", dest="tpm_limit", type=int)
    create.add_argument("--parallel", dest="max_parallel_requests", type=int)
    create.add_argument("--duration", help="key lifetime, e.g. 30d (default: no expiry)")
    create.add_argument("--user", dest="user_id")
    create.add_argument("--team", dest="team_id")
    create.add_argument("--config", help=config_help)
    for action, text in (("list", "list keys"),):
        p = keys_sub.add_parser(action, help=text)
        p.add_argument("--config", help=config_help)
    for action, text in (("info", "show a key"), ("block", "block a key"), ("unblock", "unblock a key"), ("delete", "delete a key")):
        p = keys_sub.add_parser(action, help=text)
        p.add_argument("key", help="the key, its SHA-256 hash, or its alias")
        p.add_argument("--config", help=config_help)
    keys.set_defaults(func=cmd_keys)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="action", required=True)
    check = config_sub.add_parser("check", help="validate a config file and explain any problem with file:line")
    check.add_argument("path")
    check.set_defaults(func=cmd_config_check)

    migrate = sub.add_parser("migrate", help="apply database schema migrations")
    migrate.add_argument("--config", help=config_help)
    migrate.set_defaults(func=cmd_migrate)

    spend = sub.add_parser("spend", help="spend reports")
    spend_sub = spend.add_subparsers(dest="action", required=True)
    report = spend_sub.add_parser("report", help="print spend grouped by key, user, team or model")
    report.add_argument("--by", choices=("key", "user", "team", "model"), default="key")
    report.add_argument("--since", help="only requests newer than this, e.g. 24h, 7d")
    report.add_argument("--config", help=config_help)
    report.set_defaults(func=cmd_spend_report)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    from keystile.store.database import DatabaseUnavailable

    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except DatabaseUnavailable as exc:  # keys, migrate, spend report: one line, not a traceback
        sys.stderr.write(f"keystile: cannot reach the database: {exc}\n")
        code = 1
    raise SystemExit(code)


if __name__ == "__main__":
    main()
