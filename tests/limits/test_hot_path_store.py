"""Rate-limit and budget checks cost no database round-trip: proven by counting every store query per request.

The gateway runs in-process (the built-in mock provider, a SQLite file) and every query the
store sends is counted when it is made on behalf of an inference request: a context
variable marks the requests, so the spend writer's and revision poller's own background
queries — started before it was set — are not counted. After the first request loads the
key, a key with a user and a team, each carrying budgets (hard and soft, with periods) and
rpm/tpm/parallel limits, is served with zero queries.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import orjson

from keystile.config import load_settings
from keystile.server.app import KeystileApp

MASTER = "sk-ks-hot-path-master-000000000000"
IN_REQUEST: contextvars.ContextVar[bool] = contextvars.ContextVar("in_request", default=False)


class CountingDatabase:
    """Wraps the store's database; records each query made inside a request."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.in_requests: list[str] = []
        self.total = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.db, name)
        if name not in ("fetchone", "fetchall", "execute", "transaction"):
            return attr

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.total += 1
            if IN_REQUEST.get():
                self.in_requests.append(f"{name}: {str(args[0])[:60]}")
            return await attr(*args, **kwargs)

        return counted


async def call(app: KeystileApp, method: str, path: str, body: dict | None, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    raw = orjson.dumps(body) if body is not None else b""
    sent: list[dict] = []
    delivered = asyncio.Event()
    done = asyncio.Event()

    async def receive() -> dict:
        if not delivered.is_set():
            delivered.set()
            return {"type": "http.request", "body": raw, "more_body": False}
        await done.wait()  # the client stays connected until the response is complete
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    scope = {
        "type": "http", "method": method, "path": path, "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in {"content-type": "application/json", **headers}.items()],
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_limits_and_budgets_cost_no_store_query_per_request(tmp_path):
    config = tmp_path / "keystile.yaml"
    config.write_text(
        "models:\n"
        "  - name: mock\n    provider: mock\n    input_cost_per_token: 0.000001\n    output_cost_per_token: 0.000002\n"
        "spend:\n  flush_interval: 0.01\n"  # the writer runs constantly during the test, off the request path
    )
    settings = load_settings(str(config), env={"KEYSTILE_MASTER_KEY": MASTER, "KEYSTILE_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}"})

    async def run() -> None:
        app = KeystileApp(settings)
        gw = app.gateway
        await gw.start()
        try:
            admin = {"authorization": f"Bearer {MASTER}"}
            limits = {"max_budget": 100.0, "soft_budget": 0.000001, "budget_duration": "1d", "rpm_limit": 10_000, "tpm_limit": 10_000_000, "max_parallel_requests": 50}
            assert (await call(app, "POST", "/team/new", {"team_id": "t", **limits}, admin))[0] == 200
            assert (await call(app, "POST", "/user/new", {"user_id": "u", "auto_create_key": False, **limits}, admin))[0] == 200
            status, _, body = await call(
                app, "POST", "/key/generate", {"user_id": "u", "team_id": "t", "model_rpm_limit": {"mock": 10_000}, "model_tpm_limit": {"mock": 10_000_000}, **limits}, admin
            )
            assert status == 200
            key = orjson.loads(body)["key"]
            counting = CountingDatabase(gw.store.db)
            gw.store.db = counting
            lookups_before = gw.cache.lookups

            anthropic = {"x-api-key": key, "anthropic-version": "2023-06-01"}
            openai = {"authorization": f"Bearer {key}"}
            message = {"model": "mock", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}
            token = IN_REQUEST.set(True)
            try:
                status, _, _ = await call(app, "POST", "/v1/messages", message, anthropic)  # first use: the key is loaded
                assert status == 200
                warm_up = len(counting.in_requests)
                assert gw.cache.lookups == lookups_before + 1 and warm_up > 0  # the counting sees request queries
                for i in range(60):
                    stream = i % 2 == 0
                    if i % 3:
                        status, headers, _ = await call(app, "POST", "/v1/messages", {**message, "stream": stream}, anthropic)
                        quota = "anthropic-ratelimit-requests-remaining"
                    else:
                        status, headers, _ = await call(app, "POST", "/v1/chat/completions", {"model": "mock", "stream": stream, "messages": message["messages"]}, openai)
                        quota = "x-ratelimit-remaining-requests"
                    assert status == 200
                    assert quota in headers and "x-keystile-budget-warning" in headers
                    await asyncio.sleep(0.002)  # let the background writer flush between requests
            finally:
                IN_REQUEST.reset(token)

            assert counting.in_requests[warm_up:] == []
            assert gw.cache.lookups == lookups_before + 1
            assert counting.total > warm_up  # the writer did write meanwhile, off the request path
            state = gw.ledger.states[("team", "t")]
            assert state.spend > 0  # and the budgets were charged
        finally:
            await gw.stop()

    asyncio.run(run())
