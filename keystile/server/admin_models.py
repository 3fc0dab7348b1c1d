"""Models and their health, in LiteLLM's shapes: ``/model/info``, ``/model_group/info``, ``/model/new``,
``/model/delete`` and ``/health``.

Deployments come from the configuration file and from the database (added with ``/model/new``):
a model added at run time is stored, served by this instance at once and by every other one
within a second (the store's revision counter, or the Redis broadcast), without a restart.
A configured deployment cannot be deleted through the API: the file is its source of truth.
``/health`` reports what the router has seen (cooldowns, latency, failures) and, with
``?model=`` or ``?model_id=``, calls those deployments for real once (a one-token request each,
at most ``LIVE_CHECK_LIMIT`` of them, ``LIVE_CHECK_TIMEOUT`` seconds each; not charged to any key).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import orjson

from keystile.apiformat import ApiFormat
from keystile.auth import Identity
from keystile.config.model import Deployment
from keystile.config.runtime_models import read_runtime_model
from keystile.credentials import mask
from keystile.errors import ErrorKind, GatewayError
from keystile.providers.base import Operation, UpstreamCall
from keystile.server.catalog import may_use
from keystile.store.columns import storable
from keystile.store.model_table import StoredModel
from keystile.upstream.client import Timeouts

from keystile.server.admin import bad_request, checked_text

if TYPE_CHECKING:
    from keystile.server.admin import Admin, Body, Handler

LIVE_CHECK_LIMIT = 20
LIVE_CHECK_TIMEOUT = 15.0
MAX_RUNTIME_MODELS = 1000
_SECRET_PARAMS = frozenset({"api_key"})


def litellm_model(deployment: Deployment) -> str:
    """LiteLLM's ``provider/model`` spelling of what a deployment calls upstream."""
    return f"{deployment.provider}/{deployment.model or '*'}"


def is_embedding(deployment: Deployment) -> bool:
    return "embed" in (deployment.model or deployment.model_name).lower()


def masked_params(deployment: Deployment) -> dict[str, Any]:
    """A deployment's ``litellm_params`` as /model/info shows them: never its key, never header values."""
    prices = deployment.prices
    params: dict[str, Any] = {
        "model": litellm_model(deployment),
        "api_base": deployment.api_base,
        "api_version": deployment.api_version,
        "api_key": mask(deployment.api_key) if deployment.api_key else None,
        "rpm": deployment.rpm,
        "tpm": deployment.tpm,
        "weight": deployment.weight,
        "timeout": deployment.timeout,
        "stream_timeout": deployment.stream_idle_timeout,
        "max_retries": deployment.max_retries,
        "region_name": deployment.region,
        "forward_client_credentials": deployment.forward_client_credentials,
        "extra_headers": {name: "***" for name, _ in deployment.headers} or None,
    }
    if prices is not None:
        params.update(
            input_cost_per_token=prices.input_cost_per_token,
            output_cost_per_token=prices.output_cost_per_token,
            cache_creation_input_token_cost=prices.cache_creation_input_token_cost,
            cache_read_input_token_cost=prices.cache_read_input_token_cost,
        )
    return {k: v for k, v in params.items() if v is not None}


class ModelsAPI:
    def __init__(self, admin: "Admin") -> None:
        self.admin = admin
        self.gw = admin.gw

    def _runtime_ids(self) -> set[str]:
        return {d.id for d in self.gw.router.runtime}

    def _price_fields(self, deployment: Deployment) -> dict[str, float | None]:
        price = self.gw.accountant.price(deployment) if deployment.model else None
        return {
            "input_cost_per_token": price.input if price else None,
            "output_cost_per_token": price.output if price else None,
            "cache_creation_input_token_cost": price.cache_write if price else None,
            "cache_read_input_token_cost": price.cache_read if price else None,
        }

    def model_view(self, deployment: Deployment, runtime: set[str]) -> dict[str, Any]:
        return {
            "model_name": deployment.model_name,
            "litellm_params": masked_params(deployment),
            "model_info": {
                "id": deployment.id,
                "db_model": deployment.id in runtime,
                "base_model": deployment.base_model,
                "mode": "embedding" if is_embedding(deployment) else "chat",
                "litellm_provider": deployment.provider,
                "wire_api": deployment.wire_api,
                **self._price_fields(deployment),
            },
        }

    # --- reading -------------------------------------------------------------------------------

    async def model_info(self, body: "Body", query: dict, caller: Identity | None) -> dict:
        """Every deployment the caller may use (all of them for an admin), optionally one by id."""
        wanted = query.get("litellm_model_id") or query.get("model_id")
        runtime = self._runtime_ids()
        out = [
            self.model_view(d, runtime)
            for d in self.gw.router.deployments()
            if (wanted is None or d.id == wanted) and (caller is None or may_use(caller, d.model_name))
        ]
        if wanted is not None and not out:
            raise GatewayError(ErrorKind.NOT_FOUND, f"No deployment with id {wanted[:200]!r}.")
        return {"data": out}

    async def model_group_info(self, body: "Body", query: dict, caller: Identity | None) -> dict:
        wanted = query.get("model_group")
        out = []
        for name, group in self.gw.router.groups.items():
            if wanted is not None and name != wanted:
                continue
            if caller is not None and not may_use(caller, name):
                continue
            first = group.deployments[0]
            prices = self._price_fields(first)
            rpms = [d.rpm for d in group.deployments]
            tpms = [d.tpm for d in group.deployments]
            out.append(
                {
                    "model_group": name,
                    "providers": list(dict.fromkeys(d.provider for d in group.deployments)),
                    "max_input_tokens": None,
                    "max_output_tokens": None,
                    "input_cost_per_token": prices["input_cost_per_token"],
                    "output_cost_per_token": prices["output_cost_per_token"],
                    "mode": "embedding" if is_embedding(first) else "chat",
                    "tpm": sum(t for t in tpms if t) if all(tpms) else None,
                    "rpm": sum(r for r in rpms if r) if all(rpms) else None,
                    "supports_parallel_function_calling": False,
                    "supports_vision": False,
                    "supports_function_calling": not is_embedding(first),
                    "supported_openai_params": [],
                    "deployments": len(group.deployments),
                    "strategy": group.strategy,
                }
            )
        if wanted is not None and not out:
            raise GatewayError(ErrorKind.NOT_FOUND, f"No model group {wanted[:200]!r}.")
        return {"data": out}

    # --- changing ------------------------------------------------------------------------------

    async def model_new(self, body: "Body", query: dict) -> dict:
        model_name = body.data.get("model_name")
        params = body.data.get("litellm_params")
        info = body.data.get("model_info")
        if not isinstance(model_name, str) or not model_name.strip():
            raise bad_request("model_name: required, the public name clients send as model.", "model_name")
        checked_text("model_name", model_name)
        if not isinstance(params, dict):
            raise bad_request("litellm_params: required, an object with at least model (provider/model).", "litellm_params")
        if info is not None and not isinstance(info, dict):
            raise bad_request("model_info: expected an object.", "model_info")
        model_id = (info or {}).get("id")
        if model_id is None:
            model_id = str(uuid.uuid4())
        elif not isinstance(model_id, str) or not model_id.strip() or len(model_id) > 200 or not storable(model_id):
            raise bad_request("model_info.id: expected a non-empty string of at most 200 characters (no NUL).", "model_info")
        deployment, problems = read_runtime_model(model_id, model_name, params, info)
        if deployment is None:
            first = problems[0]
            raise bad_request("; ".join(problems)[:1000], first.split(":", 1)[0].split(".", 1)[0])
        if any(d.id == model_id for d in self.gw.router.deployments()) or await self.gw.model_table.get(model_id) is not None:
            raise bad_request(f"model_info.id: a deployment with id {model_id!r} already exists.", "model_info")
        if len(self.gw.router.runtime) >= MAX_RUNTIME_MODELS:
            raise bad_request(f"model_name: at most {MAX_RUNTIME_MODELS} models can be added at run time.", "model_name")
        stored = StoredModel(model_id, model_name, _json_safe(params), _json_safe(info or {}))
        await self.gw.model_table.insert(stored)
        await self.gw.reload_models()
        await self.gw.changed()  # the others reload on the broadcast, or on their next revision poll
        return {
            "model_id": model_id,
            "model_name": model_name,
            "litellm_params": masked_params(deployment),
            "model_info": {**(info or {}), "id": model_id, "db_model": True},
        }

    async def model_delete(self, body: "Body", query: dict) -> dict:
        model_id = body.string("id")
        if model_id is not None:
            checked_text("id", model_id)
        if not model_id:
            raise bad_request("id: required, the model's id (model_info.id in /model/info).", "id")
        if model_id not in self._runtime_ids() and any(d.id == model_id for d in self.gw.router.configured):
            raise bad_request(f"id: {model_id!r} is defined in the configuration file; remove it there.", "id")
        if not await self.gw.model_table.delete(model_id):
            raise GatewayError(ErrorKind.NOT_FOUND, f"No model with id {model_id[:200]!r} was added at run time.")
        await self.gw.reload_models()
        await self.gw.changed()
        return {"message": f"Model: {model_id} deleted successfully"}

    # --- health --------------------------------------------------------------------------------

    async def health(self, body: "Body", query: dict) -> dict:
        """LiteLLM's ``healthy_endpoints`` / ``unhealthy_endpoints`` from the router's state, or a live check."""
        router = self.gw.router
        model = query.get("model")
        model_id = query.get("model_id")
        states = {row["id"]: row for row in router.health(self.gw.clock.now())}
        live: dict[str, str | None] = {}
        if model is not None or model_id is not None:
            if model is not None:
                group = router.group(model)
                if group is None:
                    raise bad_request(f"model: {model[:200]!r} is not served by this gateway.", "model")
                targets = [router.concrete(d, model) for d in group.deployments]
            else:
                targets = [d for d in router.deployments() if d.id == model_id]
                if not targets:
                    raise bad_request(f"model_id: no deployment with id {model_id[:200]!r}.", "model_id")
            targets = targets[:LIVE_CHECK_LIMIT]
            results = await asyncio.gather(*(self._live_check(d) for d in targets))
            live = {d.id: error for d, error in zip(targets, results)}
        healthy, unhealthy = [], []
        for deployment in router.deployments():
            if live and deployment.id not in live:
                continue
            state = states.get(deployment.id, {})
            endpoint = {
                "model": litellm_model(deployment),
                "model_name": deployment.model_name,
                "model_id": deployment.id,
                "api_base": deployment.api_base,
                "state": state.get("state"),
                "latency_ms": state.get("latency_ms"),
            }
            error = live.get(deployment.id) if live else _state_error(state)
            if error is None:
                healthy.append(endpoint)
            else:
                unhealthy.append({**endpoint, "error": error})
        return {
            "healthy_endpoints": healthy,
            "unhealthy_endpoints": unhealthy,
            "healthy_count": len(healthy),
            "unhealthy_count": len(unhealthy),
            "deployments": list(states.values()),
        }

    async def _live_check(self, deployment: Deployment) -> str | None:
        """One tiny real request to the deployment; None if it answered well, else what went wrong."""
        from keystile.formats import FORMATS

        provider = self.gw.providers[deployment.provider]
        operation = Operation.EMBEDDINGS if is_embedding(deployment) else Operation.GENERATE
        wire = provider.wire_format(deployment, operation, ApiFormat.OPENAI if operation is Operation.EMBEDDINGS else ApiFormat.ANTHROPIC)
        model = deployment.model or deployment.model_name
        if operation is Operation.EMBEDDINGS:
            body: dict = {"model": model, "input": "ping"}
        else:
            hub = {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]}
            body = hub if wire is ApiFormat.ANTHROPIC else FORMATS[wire].from_hub(hub, upstream_model=model, stream=False)
        call = UpstreamCall(
            deployment, operation, wire, orjson.dumps(body), False, {}, None,
            Timeouts(connect=min(deployment.connect_timeout or 5.0, 5.0), first_byte=LIVE_CHECK_TIMEOUT, idle=LIVE_CHECK_TIMEOUT),
        )
        try:
            response = await asyncio.wait_for(provider.send(call), LIVE_CHECK_TIMEOUT)
            try:
                data = await asyncio.wait_for(response.read(), LIVE_CHECK_TIMEOUT)
            finally:
                await response.aclose()
        except asyncio.TimeoutError:
            return f"no answer within {LIVE_CHECK_TIMEOUT:g}s"
        except Exception as exc:  # connection refused, TLS, DNS … : the check's answer, not ours
            return f"{type(exc).__name__}: {str(exc)[:200]}"
        if response.status >= 400:
            return f"HTTP {response.status}: {data[:200].decode('utf-8', 'replace')}"
        return None


def _state_error(state: dict) -> str | None:
    if not state or state.get("state") in (None, "healthy"):
        return None
    if state.get("state") == "cooling_down":
        return f"cooling down after {state.get('recent_failures')} recent failures (until {state.get('cooling_down_until')})"
    return f"{state.get('state')}: probing after a cooldown"


def _json_safe(value: Any) -> Any:
    """What orjson can store: the body was parsed from JSON, so this only normalises it."""
    return orjson.loads(orjson.dumps(value))


def routes(admin: "Admin") -> dict[str, "Handler"]:
    api = ModelsAPI(admin)
    h = admin.handler
    return {
        "/model/info": h("GET", api.model_info, any_key=True),
        "/v1/model/info": h("GET", api.model_info, any_key=True),
        "/model_group/info": h("GET", api.model_group_info, any_key=True),
        "/model/new": h("POST", api.model_new),
        "/model/delete": h("POST", api.model_delete),
        "/health": h("GET", api.health),
    }
