"""The ASGI application: builds the pipeline once, routes each request to its handler.

``Gateway`` owns every stage's long-lived state (store, caches, counters, upstream pool);
``KeystileApp`` is the raw ASGI callable servers run. ``create_app`` is the factory the
``serve`` command hands to uvicorn, one per worker process.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from keystile.accesslog import AccessLog
from keystile.accounting.spend import Accountant, SpendWriter
from keystile.aio import stop_tasks
from keystile.apiformat import ApiFormat
from keystile.auth import Authenticator, KeyCache, hash_key
from keystile.clock import Clock
from keystile.config import Settings, load_settings
from keystile.errors import ErrorKind, GatewayError
from keystile.limits.authorize import Authorizer
from keystile.limits.budgets import Ledger
from keystile.limits.ratelimit import LocalCounters
from keystile.logs import setup_logging
from keystile.metrics import Metrics
from keystile.providers.anthropic import AnthropicProvider
from keystile.providers.base import Provider, upstream_client
from keystile.providers.bedrock import BedrockProvider
from keystile.providers.gemini import GeminiProvider
from keystile.providers.mock import MockProvider
from keystile.providers.openai import AzureOpenAIProvider, OpenAIProvider
from keystile.providers.vertex import VertexProvider
from keystile.limits.reservation import Reserver
from keystile.routing.router import Router
from keystile.server import admin, catalog
from keystile.server.http import JSON_TYPE, Receive, Scope, Send, header_value, send_bytes, send_error
from keystile.server.inference import Endpoint, InferenceHandler
from keystile.server.routes import match_endpoint
from keystile.store.database import CountingDatabase, DatabaseUnavailable
from keystile.store.health import StoreHealth
from keystile.store.model_table import ModelTable
from keystile.store.repository import Store
from keystile.store.spend_reports import SpendReports
from keystile.store.ui_sessions import SessionTable

log = logging.getLogger("keystile")

MASTER_KEY_META = "master_key_hash"
_ROOT_BODY = b'{"name":"keystile","status":"ok"}'
REVISION_POLL_SECONDS = 0.5
_MODEL_PREFIXES = tuple(p + "/" for p in catalog.LIST_PATHS)



async def ensure_master_key(store: Store, settings: Settings) -> tuple[str, str | None]:
    """(hash of the master key, the raw key if it was generated just now).

    A configured key wins. Otherwise the key generated on the first start is used; only
    its hash is stored, so the raw value is shown exactly once, by whoever generated it.
    """
    if settings.master_key:
        return hash_key(settings.master_key), None
    stored = await store.get_meta(MASTER_KEY_META)
    if stored:
        return stored, None
    from keystile.auth import generate_key

    raw = generate_key()
    if await store.insert_meta_if_absent(MASTER_KEY_META, hash_key(raw)):
        return hash_key(raw), raw
    stored = await store.get_meta(MASTER_KEY_META)
    assert stored is not None
    return stored, None


class Gateway:
    """Every stage of the pipeline, wired together for one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock = Clock()
        self.metrics = Metrics()
        self.router = Router(settings, on_cooldown=self.metrics.set_cooling_down)
        self.upstream = upstream_client(settings.upstream)
        self.providers: dict[str, Provider] = {
            "anthropic": AnthropicProvider(self.upstream),
            "openai": OpenAIProvider(self.upstream),
            "azure": AzureOpenAIProvider(self.upstream),
            "bedrock": BedrockProvider(self.upstream),
            "vertex_ai": VertexProvider(self.upstream),
            "gemini": GeminiProvider(self.upstream),
            "mock": MockProvider(),
        }
        self.ledger = Ledger()
        self.counters = LocalCounters()
        self.authorizer = Authorizer(self.ledger, self.counters)
        self.store: Store | None = None
        self.cache: KeyCache | None = None
        self.authenticator: Authenticator | None = None  # type: ignore[assignment]
        self.writer: SpendWriter | None = None
        self.accountant: Accountant | None = None  # type: ignore[assignment]
        self.access_log = AccessLog(settings.server.access_log)
        self.inference = InferenceHandler(self)
        from keystile.server.sessions import SessionManager

        self.ui_sessions = SessionManager(self)
        """Admin UI sign-ins; the admin API accepts their cookie (with CSRF checks) besides the master key."""
        self.test_clock = os.environ.get("KEYSTILE_TEST_CLOCK") == "1"
        self.store_health = StoreHealth(self.metrics)
        self.shared: SharedState | None = None
        """Redis-backed counters, budgets and key broadcast, when ``redis_url`` is set."""
        self.tracing: Tracing | None = None
        """OpenTelemetry spans of each request, when ``otel.enabled`` (the SDK is imported only then)."""
        self.model_table: ModelTable | None = None
        """Deployments added at run time (``/model/new``); the router serves them beside the configured ones."""
        self.sessions: SessionTable | None = None
        """The admin UI's sign-ins."""
        self.reports: SpendReports | None = None
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()
        self._revision = 0
        self._models_lock = asyncio.Lock()

    async def start(self) -> None:
        settings = self.settings
        self.store = await Store.open(settings.database_url)
        self.store.db = CountingDatabase(self.store.db, self.metrics.store_call)
        self.model_table = ModelTable(self.store.db, self.store._bump_statement)
        self.sessions = SessionTable(self.store.db)
        self.reports = SpendReports(self.store.db)
        master_hash, generated = await ensure_master_key(self.store, settings)
        if generated is not None:
            print_generated_master_key(generated)
        self.cache = KeyCache(self.store, settings.key_cache_ttl, grace=settings.store_outage_grace, health=self.store_health)
        self.authenticator = Authenticator(self.cache, master_hash, self.clock.now)
        shared = settings.server.workers > 1 or not settings.database_url.startswith("sqlite")
        self.writer = SpendWriter(self.store, self.ledger, settings.spend, self.metrics, shared=shared, health=self.store_health)
        if settings.redis_url:
            from keystile.server.scaleout import connect_shared_state  # redis is an optional dependency

            self.shared = await connect_shared_state(self, settings.redis_url)
            self.counters = self.shared.counters
        self.accountant = Accountant(self.authorizer, self.writer, self.metrics, self.clock.now, settings.spend.prices_file)
        self.reserver = Reserver(self.accountant.price, self.router.concrete, settings.default_max_tokens)
        """Each admitted request's worst case, held in its budgets and tpm limits while it runs."""
        if settings.otel.enabled:
            from keystile.tracing.spans import Tracing  # the OpenTelemetry SDK is an optional dependency

            self.tracing = Tracing(settings.otel)
            self.inference.trace_with(self.tracing)
        self.writer.start()
        self.access_log.start()
        self._revision = await self.store.auth_revision()
        await self.reload_models()
        self._tasks.append(asyncio.create_task(self._poll_revision(), name="keystile-revision-poll"))
        self._tasks.append(asyncio.create_task(self._fold_metrics(), name="keystile-metrics-fold"))

    async def stop(self) -> None:
        # Requests the server cut off at its shutdown deadline are charged as they unwind;
        # the last spend flush below must include them.
        if not await self.inference.drained(timeout=5.0):
            log.warning("shutting down with %d request(s) still unaccounted", self.inference.in_flight)
        await stop_tasks(*self._tasks)
        await self.access_log.stop()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)  # exports the spans still queued
        if self.writer is not None:
            await self.writer.close()
        self.metrics.fold()
        if self.shared is not None:
            await self.shared.close()
        await self.upstream.aclose()
        if self.store is not None:
            await self.store.close()

    async def _fold_metrics(self) -> None:
        """Per-request metrics are tallied cheaply; publish them once a second (scrapes fold too).

        The same tick gives memory back after a burst of concurrent requests has drained.
        """
        while True:
            await asyncio.sleep(1.0)
            self.metrics.fold()
            self.inference.burst.check(self.inference.in_flight)

    async def _poll_revision(self) -> None:
        """Drop cached keys when another process changed keys, users or teams."""
        while True:
            await asyncio.sleep(REVISION_POLL_SECONDS)
            try:
                revision = await self.store.auth_revision()  # type: ignore[union-attr]
            except DatabaseUnavailable as exc:
                self.store_health.failed(exc)
                continue
            except Exception as exc:
                log.debug("revision poll failed: %s", exc)
                continue
            self.store_health.ok()
            if revision != self._revision:
                self._revision = revision
                self.cache.invalidate()  # type: ignore[union-attr]
                self.metrics.key_cache_invalidated("poll")
                await self._reload_models_quietly()

    async def reload_models(self) -> bool:
        """Serve what the models table holds now (deployments added at run time); True if that changed.

        A row this instance cannot serve (an ``os.environ/NAME`` its environment lacks) is skipped
        with a warning; the others are still served.
        """
        from keystile.config.runtime_models import read_runtime_model

        assert self.model_table is not None
        async with self._models_lock:
            deployments = []
            for stored in await self.model_table.all():
                deployment, problems = read_runtime_model(stored.model_id, stored.model_name, stored.litellm_params, stored.model_info)
                if deployment is None:
                    log.warning("model %s (%s) added at run time cannot be served here: %s", stored.model_id, stored.model_name, "; ".join(problems))
                    continue
                deployments.append(deployment)
            changed = self.router.set_runtime(tuple(deployments))
            if changed:
                self.reserver.forget_prices()
            return changed

    async def _reload_models_quietly(self) -> None:
        try:
            await self.reload_models()
        except Exception as exc:  # the next revision change (or poll) tries again
            log.debug("reloading run-time models failed: %s", exc)

    async def changed(self, token_hash: str | None = None) -> None:
        """Keys, users or teams changed here: forget cached copies now; tell the other instances (Redis), which also poll."""
        assert self.cache is not None and self.store is not None
        self.cache.invalidate(token_hash)
        revision = await self.store.auth_revision()
        if revision != self._revision + 1:
            self.cache.invalidate()  # another process changed something too since we last looked
        self._revision = max(self._revision, revision)
        if self.shared is not None:
            await self.shared.broadcast.publish(token_hash, revision)

    def changed_elsewhere(self, token_hash: str | None, revision: int) -> None:
        """Another instance's broadcast: drop just that key when no other change came between (else everything)."""
        assert self.cache is not None
        if token_hash is None or revision > self._revision + 1:
            self.cache.invalidate()
        else:
            self.cache.invalidate(token_hash)
        self._revision = max(self._revision, revision)
        self.metrics.key_cache_invalidated("redis")
        if token_hash is None:  # models change with a broadcast of "everything"
            task = asyncio.create_task(self._reload_models_quietly())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def share_budget_change(self, entity: tuple[str, str], changes: dict) -> None:
        """An admin set an entity's spend or started a new budget period: instances sharing Redis take it too."""
        if self.shared is None:
            return
        fields: dict[str, float | None] = {}
        if changes.get("spend") is not None:
            fields["spend"] = changes["spend"]
        if "budget_reset_at" in changes:
            fields["reset_at"] = changes["budget_reset_at"]
        if fields:
            task = asyncio.create_task(self.shared.budgets.admin_change(entity, fields))
            self._background.add(task)  # the handler goes on; Redis has it before the next request
            task.add_done_callback(self._background.discard)


if TYPE_CHECKING:
    from keystile.server.scaleout import SharedState
    from keystile.tracing.spans import Tracing


def print_generated_master_key(raw: str) -> None:
    """The only place a generated master key is ever shown — straight to the terminal, not the log."""
    sys.stdout.write(
        "\n"
        "  keystile generated a master key (only its hash is stored; it will not be shown again):\n\n"
        f"    {raw}\n\n"
        "  Use it for the admin API and `keystile keys create`; set KEYSTILE_MASTER_KEY to choose your own.\n\n"
    )
    sys.stdout.flush()


class KeystileApp:
    """Raw ASGI: a dict lookup picks the handler; nothing else runs before the pipeline."""

    def __init__(self, settings: Settings) -> None:
        self.gateway = Gateway(settings)
        self.admin_routes = admin.routes(self.gateway)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/")
        method: str = scope["method"]
        endpoint = match_endpoint(path)
        try:
            if endpoint is not None:
                if method != "POST":
                    if endpoint.client is ApiFormat.RESPONSES and header_value(scope["headers"], b"upgrade"):
                        # Codex first tries the Responses WebSocket mode; keystile serves HTTP + SSE,
                        # and saying so at once makes Codex fall back without waiting.
                        raise GatewayError(
                            ErrorKind.UPGRADE_REQUIRED, "keystile serves the Responses API over HTTP (POST), not WebSocket."
                        )
                    raise GatewayError(ErrorKind.METHOD_NOT_ALLOWED, f"{path} accepts POST, not {method}.")
                await self.gateway.inference(scope, receive, send, endpoint)
                return
            if path == "/" and method in ("HEAD", "GET"):
                # Claude Code sends HEAD / before its first request to see the gateway is there.
                await send_bytes(send, 200, b"" if method == "HEAD" else _ROOT_BODY, [JSON_TYPE])
                return
            route = self.admin_routes.get(path) or self.admin_routes.get(admin.key_path_route(path) or "")
            if route is not None:
                await route(scope, receive, send)
                return
            if path in catalog.LIST_PATHS or path.startswith(_MODEL_PREFIXES):
                await catalog.models(self.gateway, scope, receive, send, path)
                return
            if path.endswith("/inference-profiles"):  # Claude Code's Bedrock mode, behind any prefix
                await catalog.bedrock_inference_profiles(self.gateway, scope, receive, send)
                return
            raise GatewayError(ErrorKind.NOT_FOUND, f"No route {method} {path}.")
        except GatewayError as error:
            await send_error(send, _error_format(scope, endpoint), error)
        except Exception:
            log.exception("unhandled error serving %s %s", method, path)
            error = GatewayError(ErrorKind.INTERNAL, "keystile hit an internal error; it has been logged.")
            try:
                await send_error(send, _error_format(scope, endpoint), error)
            except Exception:
                pass

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.gateway.start()
                except Exception as exc:
                    log.exception("keystile failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                _freeze_startup_objects()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.gateway.stop()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return


def _freeze_startup_objects() -> None:
    """Move everything built at startup (modules, config, pools) out of the garbage collector's reach.

    Those objects live as long as the process; without this, every full collection walks all
    of them again, which under load cost about 5% of the worker's CPU.
    """
    gc.collect()
    gc.freeze()


def _error_format(scope: Scope, endpoint: Endpoint | None) -> ApiFormat:
    if endpoint is not None:
        return endpoint.client
    if header_value(scope["headers"], b"anthropic-version") is not None:
        return ApiFormat.ANTHROPIC
    return ApiFormat.OPENAI


def create_app() -> KeystileApp:
    """Factory for the server process: config path from ``KEYSTILE_CONFIG`` (unset: built-in default)."""
    settings = load_settings(os.environ.get("KEYSTILE_CONFIG") or None)
    workers = os.environ.get("KEYSTILE_WORKERS")
    if workers:
        settings = replace(settings, server=replace(settings.server, workers=int(workers)))
    setup_logging(settings.log_level)
    return KeystileApp(settings)
