"""The ``keystile`` command: serve, manage keys on the store, check configs, migrate, report spend."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from typing import Any, Awaitable, Callable, Sequence

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

    _make_database_folder(settings.database_url)
    return Store.open(settings.database_url)


def _make_database_folder(url: str) -> None:
    """SQLite creates the file but not its folder (the built-in config's data folder may be new)."""
    from keystile.config.paths import database_file

    path = database_file(url)
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)


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
    _note_old_default_database(settings)
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


def _note_old_default_database(settings: Settings) -> None:
    """The built-in config used to keep ./keystile.db in whatever folder keystile started in."""
    from keystile.config.paths import database_file

    if settings.source != DEFAULT_CONFIG_NAME or os.environ.get("KEYSTILE_DATABASE_URL"):
        return
    old = os.path.abspath("keystile.db")
    if os.path.isfile(old) and old != database_file(settings.database_url):
        sys.stderr.write(
            f"keystile: note: the built-in config keeps its database in {database_file(settings.database_url)}, "
            f"not in {old} any more; to go on using that one, start with KEYSTILE_DATABASE_URL=sqlite:///{old}\n"
        )


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
        ws="none",  # keystile speaks HTTP only; an upgrade request (Codex's WebSocket try) is answered 426
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
    """What is running and commands that work when pasted into another shell, in any folder."""
    host = settings.server.host
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown_host}:{settings.server.port}"
    from_env = bool(os.environ.get("KEYSTILE_MASTER_KEY"))
    if from_env:
        source = "from the KEYSTILE_MASTER_KEY environment variable"
    elif settings.master_key:
        source = f"the master_key in {_config_label(settings)}"
    elif generated:
        source = "generated just now (only its hash is stored)"
    else:
        source = "generated on an earlier first start (only its hash is stored)"
    names = settings.model_names
    exact = [name for name in names if "*" not in name]
    model = exact[0] if exact else (names[0].replace("*", "model") if names else "MODEL")
    body = f'{{"model": "{model}", "max_tokens": 64, "messages": [{{"role": "user", "content": "Hello"}}]}}'
    lines = [
        "",
        f"  keystile {__version__} — {url}",
        f"  config:      {_config_label(settings)} ({len(names)} models: {_first_names(names, 6)})",
        f"  database:    {_database_label(settings.database_url)}",
        *([f"  redis:       {_safe_url(settings.redis_url)} (shared rate limits, budgets, key invalidation)"] if settings.redis_url else []),
        f"  master key:  {source}",
        "",
    ]
    # The admin API's examples (README) send the master key as $MASTER_KEY.
    if generated:
        lines += [
            "  Save the master key now; it will not be shown again. For the admin API:",
            f"    export MASTER_KEY={generated}",
        ]
    elif from_env:
        lines += ["  For the admin API (in a shell where KEYSTILE_MASTER_KEY is set):", '    export MASTER_KEY="$KEYSTILE_MASTER_KEY"']
    elif settings.master_key:
        lines += [f"  For the admin API: export MASTER_KEY=<the master_key in {_config_label(settings)}>"]
    else:
        new_key = f"sk-ks-$({shlex.quote(sys.executable)} -c 'import secrets; print(secrets.token_urlsafe(24))')"
        lines += [
            "  Lost the master key? Stop keystile and start it with a new one (the master key while it is set):",
            f'    export MASTER_KEY="{new_key}"',
            f'    KEYSTILE_MASTER_KEY="$MASTER_KEY" {_serve_command()}',
        ]
    lines += [
        "",
        "  Make a virtual key (written straight to the store; no master key needed):",
        f"    export KEYSTILE_KEY=$({_keys_command(settings)} keys create{_config_flag(settings)})",
        "",
        "  Try it:",
        f'    curl -s {url}/v1/messages -H "x-api-key: $KEYSTILE_KEY" -H "anthropic-version: 2023-06-01" \\',
        '      -H "content-type: application/json" \\',
        f"      -d '{body}'",
        "",
        "  Claude Code:",
        f'    ANTHROPIC_BASE_URL={url} ANTHROPIC_API_KEY="$KEYSTILE_KEY" claude',
        "",
        "  Codex CLI, Gemini CLI, opencode (or Claude Code): what each needs (add --write to set it up):",
        f"    {_keystile_executable()} connect codex --url {url}{_config_flag(settings)}",
        "",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _first_names(names: tuple[str, ...], shown: int) -> str:
    """The first ``shown`` model names, and how many more there are (the banner's config line)."""
    text = ", ".join(names[:shown])
    return f"{text}, and {len(names) - shown} more" if len(names) > shown else text


def _config_label(settings: Settings) -> str:
    source = settings.source or DEFAULT_CONFIG_NAME
    return source if source == DEFAULT_CONFIG_NAME else os.path.abspath(source)


def _config_flag(settings: Settings) -> str:
    """`` --config /abs/path`` for a config file; nothing for the built-in default (the CLI's default too)."""
    source = settings.source or DEFAULT_CONFIG_NAME
    return "" if source == DEFAULT_CONFIG_NAME else f" --config {shlex.quote(os.path.abspath(source))}"


def _database_label(url: str) -> str:
    from keystile.config.paths import database_file

    path = database_file(url)
    return f"{path} (SQLite)" if path else _safe_url(url)


def _keys_command(settings: Settings) -> str:
    """This ``keystile`` by absolute path, with the database this server uses when the environment chose it."""
    command = _keystile_executable()
    database = os.environ.get("KEYSTILE_DATABASE_URL")
    if database and settings.database_url.startswith("sqlite:"):
        return f"KEYSTILE_DATABASE_URL={shlex.quote(settings.database_url)} {command}"
    return command  # a PostgreSQL URL may hold a password: it is not printed; the shell must set it


def _keystile_executable() -> str:
    argv0 = sys.argv[0]
    if os.path.basename(argv0) == "keystile" and os.path.isfile(argv0):
        return shlex.quote(os.path.abspath(argv0))
    found = shutil.which("keystile")
    if found:
        return shlex.quote(os.path.abspath(found))
    return f"{shlex.quote(sys.executable)} -m keystile"


def _serve_command() -> str:
    """This ``keystile serve`` command line, with its config path made absolute."""
    args = sys.argv[1:]
    out = []
    for i, arg in enumerate(args):
        if i > 0 and args[i - 1] == "--config":
            arg = os.path.abspath(arg)
        elif arg.startswith("--config="):
            arg = "--config=" + os.path.abspath(arg.removeprefix("--config="))
        out.append(shlex.quote(arg))
    return " ".join([_keystile_executable(), *out])


def _safe_url(url: str) -> str:
    """A database URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


# --- connect ---------------------------------------------------------------------------------


def cmd_connect(args: argparse.Namespace) -> int:
    """Print (or merge into the agent's files) what points a coding agent at this gateway."""
    from pathlib import Path

    from keystile.connect import KEY_VARIABLE, Target, setup_for, write_setup
    from keystile.connect.files import MergeError, render

    settings = _settings(args.config)
    url = (args.url or _local_url(settings)).rstrip("/")
    if not url.startswith(("http://", "https://")):
        sys.stderr.write(f"keystile: --url must start with http:// or https:// (got {url[:80]!r})\n")
        return EXIT_CONFIG
    target = Target(url=url, key=args.key or None, model=args.model or None, served=settings.model_names)
    home = Path.home()
    setup = setup_for(args.agent, target, home, os.environ)
    written = None
    if args.write:
        try:
            written = write_setup(setup)
        except (MergeError, OSError) as exc:
            sys.stderr.write(f"keystile: nothing written: {exc}\n")
            return 1
    key_in_env = bool(os.environ.get(KEY_VARIABLE))
    sys.stdout.write(render(setup, url, key_given=target.key is not None, key_in_env=key_in_env, home=home, written=written))
    return 0


def _local_url(settings: Settings) -> str:
    """The gateway's URL on this machine, from the config's host and port."""
    host = settings.server.host
    host = "127.0.0.1" if host in ("0.0.0.0", "", "*") else "[::1]" if host == "::" else host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.server.port}"


# --- keys ------------------------------------------------------------------------------------

# The options of `keys create` and `keys update`: (the /key/generate field it fills, flag,
# argument type, help). The values are checked by the admin API's own readers (new_key_fields).
_CLEAR = "none"
_KEY_OPTIONS: tuple[tuple[str, str, Callable[[str], Any], str, str], ...] = (
    ("key_alias", "--alias", str, "NAME", "a name for the key, unique among keys"),
    ("models", "--models", lambda v: [m.strip() for m in v.split(",") if m.strip()], "M1,M2",
     "comma-separated model names or patterns (claude-*) the key may use; empty: all"),
    ("max_budget", "--max-budget", float, "USD", "budget; requests are refused once spend reaches it"),
    ("soft_budget", "--soft-budget", float, "USD", "spend past which responses carry x-keystile-budget-warning"),
    ("budget_duration", "--budget-duration", str, "PERIOD", "period after which spend restarts from 0, e.g. 1d, 30d"),
    ("rpm_limit", "--rpm", int, "N", "requests per minute"),
    ("tpm_limit", "--tpm", int, "N", "tokens per minute"),
    ("max_parallel_requests", "--parallel", int, "N", "requests in flight at once"),
    ("duration", "--duration", str, "DURATION", "lifetime from now, e.g. 30d (default: no expiry)"),
    ("user_id", "--user", str, "USER_ID", "the user the key belongs to"),
    ("team_id", "--team", str, "TEAM_ID", "the team the key belongs to (it must exist)"),
)
_KEY_FLAGS = {field: flag for field, flag, *_ in _KEY_OPTIONS}


def _add_key_options(parser: argparse.ArgumentParser, *, clearable: bool) -> None:
    for field, flag, kind, metavar, text in _KEY_OPTIONS:
        if clearable and field != "models":  # models: an empty list already means all
            kind = _clearable(kind)
            text += f"; '{_CLEAR}' removes it"
        parser.add_argument(flag, dest=field, type=kind, metavar=metavar, help=text)


def _clearable(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        return _CLEAR if value == _CLEAR else kind(value)

    parse.__name__ = getattr(kind, "__name__", "value")  # argparse names the type in its errors
    return parse


def _key_data(args: argparse.Namespace) -> dict[str, Any]:
    """The given options as a /key/generate or /key/update body (``none`` becomes null)."""
    data: dict[str, Any] = {}
    for field, *_ in _KEY_OPTIONS:
        value = getattr(args, field, None)
        if value is not None:
            data[field] = None if value == _CLEAR else value
    return data


def cmd_keys(args: argparse.Namespace) -> int:
    return asyncio.run(_keys(args))


async def _keys(args: argparse.Namespace) -> int:
    from keystile.errors import GatewayError
    from keystile.server.admin import new_key_fields
    from keystile.store.database import IntegrityViolation

    checked: tuple[dict[str, Any], str | None] = ({}, None)
    if args.action in ("create", "update"):
        data = _key_data(args)
        if args.action == "update" and not data:
            sys.stderr.write("keystile: keys update: give at least one option to change (see keystile keys update --help)\n")
            return 2
        try:
            checked = new_key_fields(data)
        except GatewayError as exc:
            field = exc.param or ""
            flag = _KEY_FLAGS.get(field, "--" + field.replace("_", "-"))
            sys.stderr.write(f"keystile: {flag}: {exc.message.removeprefix(field + ': ')}\n")
            return 2
    settings = _settings(args.config)
    store = await _store(settings)
    try:
        if args.action == "create":
            return await _key_create(store, *checked)
        if args.action == "list":
            return await _key_list(store)
        key = await _find_key(store, args.key)
        if key is None:
            return 1
        if args.action == "update":
            return await _key_update(store, key, *checked, given=list(_key_data(args)))
        return await _KEY_ACTIONS[args.action](store, key)
    except IntegrityViolation as exc:  # a race with another writer; the checks above catch the usual case
        sys.stderr.write(f"keystile: {'--alias: this alias is already used by another key' if 'alias' in str(exc) else exc}\n")
        return 1
    finally:
        await store.close()


async def _find_key(store: Any, ref: str) -> Any:
    """The key ``ref`` names (the key itself, its SHA-256 hash or its alias); None after saying so."""
    from keystile.auth import hash_key
    from keystile.credentials import mask

    token_hash = ref if len(ref) == 64 and all(c in "0123456789abcdef" for c in ref) else hash_key(ref)
    key = await store.get_key(token_hash) or await store.find_key_by_alias(ref)
    if key is None:
        sys.stderr.write(f"keystile: no key matches {mask(ref) if ref.startswith('sk-') else ref!r} (give the key, its hash or its alias)\n")
    return key


async def _alias_taken(store: Any, alias: str | None, token_hash: str | None = None) -> bool:
    if alias:
        other = await store.find_key_by_alias(alias)
        if other is not None and other.token_hash != token_hash:
            sys.stderr.write(f"keystile: --alias: {alias!r} is already used by another key ({other.key_name})\n")
            return True
    return False


async def _team_missing(store: Any, team_id: str | None) -> bool:
    if team_id and await store.get_team(team_id) is None:
        sys.stderr.write(f"keystile: --team: team {team_id!r} does not exist\n")
        return True
    return False


async def _key_create(store: Any, fields: dict[str, Any], duration: str | None) -> int:
    from keystile.auth import generate_key
    from keystile.store.keys import build_key

    raw = generate_key()
    record = build_key(raw, fields, time.time(), duration)
    if await _alias_taken(store, record.key_alias) or await _team_missing(store, record.team_id):
        return 1
    await store.insert_key(record)
    print(raw)
    sys.stderr.write(f"created key {record.key_name} (alias {record.key_alias or '-'}); this is the only time it is shown\n")
    return 0


async def _key_update(store: Any, key: Any, fields: dict[str, Any], duration: str | None, *, given: list[str]) -> int:
    """As /key/update: the given fields change; a new lifetime or budget period counts from now."""
    from keystile.durations import parse_duration
    from keystile.limits.budgets import period_seconds

    if await _alias_taken(store, fields.get("key_alias"), key.token_hash) or await _team_missing(store, fields.get("team_id")):
        return 1
    changes = dict(fields)
    now = time.time()
    if "duration" in given:
        changes["expires_at"] = now + parse_duration(duration) if duration else None
    if "budget_duration" in changes:
        period = period_seconds(changes["budget_duration"])
        changes["budget_reset_at"] = now + period if period else None
    await store.update_key(key.token_hash, changes)
    print(f"updated {key.key_name}: {', '.join(_KEY_FLAGS[field] for field in given)}")
    return 0


async def _key_list(store: Any) -> int:
    keys = await store.list_keys(limit=100_000)
    rows = [
        (k.key_name, k.key_alias or "-", ",".join(k.models) or "all", f"{k.spend:.4f}",
         "-" if k.max_budget is None else f"{k.max_budget:g}", "blocked" if k.blocked else "active", k.token_hash[:12])
        for k in keys
    ]
    _table(("key", "alias", "models", "spend", "budget", "state", "hash"), rows)
    return 0


async def _key_info(store: Any, key: Any) -> int:
    from keystile.server.admin import _iso  # same rendering as the admin API

    for name in ("key_name", "key_alias", "models", "spend", "max_budget", "budget_duration", "rpm_limit",
                 "tpm_limit", "max_parallel_requests", "blocked", "user_id", "team_id", "token_hash"):
        print(f"{name:22} {getattr(key, name)}")
    print(f"{'expires':22} {_iso(key.expires_at)}")
    print(f"{'created':22} {_iso(key.created_at)}")
    return 0


async def _key_regenerate(store: Any, key: Any) -> int:
    """A new secret for the same key (limits, spend and history stay); the old one stops working."""
    from keystile.auth import generate_key, hash_key
    from keystile.credentials import mask

    raw = generate_key()
    await store.rekey(key.token_hash, hash_key(raw), mask(raw), {})
    print(raw)
    sys.stderr.write(f"regenerated {key.key_alias or key.key_name}: the old key no longer works; this is the only time the new one is shown\n")
    return 0


async def _key_block(store: Any, key: Any) -> int:
    await store.update_key(key.token_hash, {"blocked": True})
    print(f"blocked {key.key_name}")
    return 0


async def _key_unblock(store: Any, key: Any) -> int:
    await store.update_key(key.token_hash, {"blocked": False})
    print(f"unblocked {key.key_name}")
    return 0


async def _key_delete(store: Any, key: Any) -> int:
    await store.delete_keys([key.token_hash])
    print(f"deleted {key.key_name}")
    return 0


_KEY_ACTIONS: dict[str, Callable[[Any, Any], Awaitable[int]]] = {
    "info": _key_info,
    "regenerate": _key_regenerate,
    "block": _key_block,
    "unblock": _key_unblock,
    "delete": _key_delete,
}


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
        _make_database_folder(settings.database_url)
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
            if args.by == "key":
                # Requests made with the master key carry no key hash; their rows say "master".
                label = f"{row[5] or '-'} ({group[:12]})" if group else ("master key" if row[5] == "master" else "-")
            out.append((label, str(requests), str(tokens_in or 0), str(tokens_out or 0), f"{cost or 0:.6f}"))
            total += cost or 0.0
        _table((args.by, "requests", "input tokens", "output tokens", "cost (USD)"), out)
        print(f"\ntotal: ${total:.6f}" + (f" since {args.since} ago" if args.since else ""))
        return 0

    return asyncio.run(run())


# --- import: keys, users and teams from another gateway (keystile/importers) ---------------------


def cmd_import_litellm(args: argparse.Namespace) -> int:
    return asyncio.run(_import_litellm(args))


async def _import_litellm(args: argparse.Namespace) -> int:
    from keystile.importers.litellm import ImportFailed, apply_plan, count, plan_import, read_snapshot, summary

    source = args.database_url or os.environ.get("DATABASE_URL")
    if not source:
        sys.stderr.write("keystile: give LiteLLM's database with --database-url postgresql://… (or set DATABASE_URL)\n")
        return 2
    settings = _settings(args.config)
    try:
        snapshot = await read_snapshot(source)
    except ImportFailed as exc:
        sys.stderr.write(f"keystile: {_safe_url(source)}: {exc}\n")
        return 1
    plan = plan_import(snapshot, time.time())
    found = count({"team": len(snapshot.teams), "user": len(snapshot.users), "key": len(snapshot.keys)})
    print(f"LiteLLM database {_safe_url(source)}: {found}")
    print(f"into keystile's store {_safe_url(settings.database_url)}" + (" (dry run: nothing is written)" if args.dry_run else ""))
    store = await (_dry_run_store(settings.database_url) if args.dry_run else _store(settings))
    try:
        outcome = await apply_plan(plan, store, dry_run=args.dry_run, update=args.update)
    finally:
        await store.close()
    for line in outcome.lines:
        print(f"  {line}")
    if plan.unmapped:
        print("not mapped (keystile has no equivalent; the rest of each record was imported):")
        for line in plan.unmapped:
            print(f"  {line}")
    print(summary(plan, outcome, dry_run=args.dry_run))
    return 0


async def _dry_run_store(url: str):  # type: ignore[no-untyped-def]
    """keystile's store as it is, read only; an empty one when it has no schema yet (nothing is created)."""
    from keystile.store.database import sqlite_path
    from keystile.store.repository import Store

    if not (url.startswith("sqlite:") and not os.path.exists(sqlite_path(url))):
        store = await Store.open(url, run_migrations=False)
        await store.ping()  # unreachable: say so, as every store command does
        try:
            await store.count_keys()
            return store
        except Exception:  # no schema here yet (or an older one): compare against an empty store
            await store.close()
    print("  (keystile's store has no schema yet: everything would be new)")
    return await Store.open("sqlite://:memory:")


def _add_import_parser(sub: Any, config_help: str) -> None:
    importer = sub.add_parser("import", help="bring keys, users and teams over from another gateway")
    importer_sub = importer.add_subparsers(dest="source", required=True)
    litellm = importer_sub.add_parser(
        "litellm",
        help="import a LiteLLM proxy's virtual keys, users and teams from its PostgreSQL database",
        description="Reads LiteLLM_VerificationToken, LiteLLM_UserTable and LiteLLM_TeamTable (only reads) and creates "
        "the same keys (by their SHA-256 hashes, so every LiteLLM key works unchanged), users and teams in keystile's "
        "store, with aliases, models, budgets and periods, limits, expiry, blocked state and spend so far. Running it "
        "again changes nothing already imported. Whatever cannot be mapped is listed, one line each.",
    )
    litellm.add_argument("--database-url", dest="database_url",
                         help="LiteLLM's database, postgresql://user:pass@host/db (default: $DATABASE_URL, as LiteLLM reads it)")
    litellm.add_argument("--dry-run", dest="dry_run", action="store_true", help="print what would be imported; write nothing")
    litellm.add_argument("--update", action="store_true",
                         help="for records already in keystile that differ, take LiteLLM's values (never its spend)")
    litellm.add_argument("--config", help=config_help + "; its database_url is where the records go")
    litellm.set_defaults(func=cmd_import_litellm)


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

    config_help = (
        "config file: keystile YAML or a LiteLLM config.yaml (default: the built-in sample with mock models, "
        "whose database is $XDG_DATA_HOME/keystile/keystile.db, by default ~/.local/share/keystile/keystile.db)"
    )
    key_help = "the key, its SHA-256 hash, or its alias"

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help=config_help)
    serve.add_argument("--host", help=f"address to listen on (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, help=f"port to listen on (default {DEFAULT_PORT})")
    serve.add_argument("--workers", type=int, help="worker processes (default 1; use one per core)")
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="manage virtual keys directly on the store (no master key needed)")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it (the only time it is shown)")
    _add_key_options(create, clearable=False)
    create.add_argument("--config", help=config_help)
    update = keys_sub.add_parser("update", help="change a key's alias, models, budgets, limits or lifetime")
    update.add_argument("key", help=key_help)
    _add_key_options(update, clearable=True)
    update.add_argument("--config", help=config_help)
    listing = keys_sub.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--config", help=config_help)
    for action, text in (
        ("info", "show a key's settings"),
        ("regenerate", "give a key a new secret and print it; the old one stops working"),
        ("block", "refuse a key's requests until it is unblocked"),
        ("unblock", "let a blocked key in again"),
        ("delete", "delete a key"),
    ):
        p = keys_sub.add_parser(action, help=text)
        p.add_argument("key", help=key_help)
        p.add_argument("--config", help=config_help)
    keys.set_defaults(func=cmd_keys)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="action", required=True)
    check = config_sub.add_parser("check", help="validate a config file and explain any problem with file:line")
    check.add_argument("path", help="the config file to check")
    check.set_defaults(func=cmd_config_check)

    migrate = sub.add_parser("migrate", help="apply database schema migrations")
    migrate.add_argument("--config", help=config_help)
    migrate.set_defaults(func=cmd_migrate)

    spend = sub.add_parser("spend", help="spend reports")
    spend_sub = spend.add_subparsers(dest="action", required=True)
    report = spend_sub.add_parser("report", help="print spend grouped by key, user, team or model")
    report.add_argument("--by", choices=("key", "user", "team", "model"), default="key", help="what to group by (default: key)")
    report.add_argument("--since", help="only requests newer than this, e.g. 24h, 7d")
    report.add_argument("--config", help=config_help)
    report.set_defaults(func=cmd_spend_report)

    connect = sub.add_parser(
        "connect",
        help="print (or with --write, merge into its config files) what points a coding agent at keystile",
        description="Print what Claude Code, Codex CLI, Gemini CLI or opencode needs to use this gateway: "
        "shell variables and config-file settings. With --write the settings are merged into the agent's "
        "files under your home (other settings are kept; a changed file is backed up first).",
    )
    connect.add_argument("agent", choices=("claude", "codex", "gemini", "opencode"), help="the coding agent to set up")
    connect.add_argument("--url", help="the gateway's base URL (default: http://HOST:PORT from the config's server section)")
    connect.add_argument(
        "--key",
        help="the virtual key to use, written as given; without it the agent reads $KEYSTILE_KEY when it "
        "starts and no key is printed or written",
    )
    connect.add_argument("--model", help="the model the agent should ask for (default: its own, or one the config serves)")
    connect.add_argument("--write", action="store_true", help="merge the settings into the agent's config files instead of only printing them")
    connect.add_argument("--config", help=config_help + "; its host, port and model names are used")
    connect.set_defaults(func=cmd_connect)

    _add_import_parser(sub, config_help)
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
