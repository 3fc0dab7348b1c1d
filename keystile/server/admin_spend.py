"""Spend reports, in LiteLLM's shapes: global spend, reports by team/user/key/model, tags, daily activity.

``/global/spend``, ``/global/spend/logs``, ``/global/spend/report``, ``/spend/tags``,
``/spend/calculate``, ``/user/daily/activity`` and ``/spend/logs/ui`` answer what LiteLLM's
endpoints of the same names answer, so scripts and dashboards written against LiteLLM keep
working. ``/keystile/activity`` is keystile's own: the admin UI's overview (time series and
top spenders in one call). Every report reads the spend log, after writing what is still in
memory, so a request made a moment ago is in it.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from keystile.accounting.pricing import cost_of, price_for
from keystile.accounting.usage import usage_from_anthropic, usage_from_openai
from keystile.errors import GatewayError
from keystile.server.admin import bad_request, positive_int
from keystile.store.spend_reports import DAY, SpendFilter

if TYPE_CHECKING:
    from keystile.server.admin import Admin, Body, Handler

_HASH_LEN = 64
MAX_BUCKETS = 2000
GLOBAL_WINDOW = 30 * DAY
"""``/global/spend`` and ``/global/spend/logs`` cover the last 30 days, as LiteLLM's views do."""


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def parse_time(raw: str | None, name: str, *, end: bool = False) -> float | None:
    """Unix seconds, an ISO date-time, or a date (``2026-11-01``; as an end, the whole day is included)."""
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        if not math.isfinite(value) or abs(value) > 1e11:
            raise bad_request(f"{name}: expected Unix seconds or an ISO date such as 2026-11-01.", name)
        return value
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name}: expected Unix seconds or an ISO date such as 2026-11-01.", name) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    value = parsed.timestamp()
    if end and len(raw) == 10:  # a bare date as the end of a range means "through that day"
        value += DAY
    return value


def date_range(query: dict, *, required: bool = False) -> tuple[float | None, float | None]:
    start = parse_time(query.get("start_date"), "start_date")
    end = parse_time(query.get("end_date"), "end_date", end=True)
    if required:
        for name, value in (("start_date", start), ("end_date", end)):
            if value is None:
                raise bad_request(f"{name}: required (a date such as 2026-11-01).", name)
    if start is not None and end is not None and end < start:
        raise bad_request("end_date: comes before start_date.", "end_date")
    return start, end


async def key_id_of(store, ref: str | None) -> str | None:  # type: ignore[no-untyped-def]
    """A key filter (the key, or its hash) as the stable id its spend-log rows carry, under every secret it has had."""
    if not ref:
        return None
    from keystile.auth import hash_key

    token_hash = ref if len(ref) == _HASH_LEN and all(c in "0123456789abcdef" for c in ref) else hash_key(ref)
    record = await store.get_key(token_hash)
    if record is None:
        record = await store.get_key_by_id(token_hash)
    return record.id if record is not None else token_hash  # a deleted key's rows keep its id


class SpendAPI:
    def __init__(self, admin: "Admin") -> None:
        self.admin = admin
        self.gw = admin.gw

    @property
    def reports(self):  # type: ignore[no-untyped-def]
        return self.gw.reports

    async def _fresh(self) -> None:
        await self.gw.writer.flush()  # rows still in memory belong in the report

    # --- LiteLLM's global spend --------------------------------------------------------------

    async def global_spend(self, body: "Body", query: dict) -> dict:
        await self._fresh()
        now = self.gw.clock.now()
        spend, _ = await self.reports.total(SpendFilter(start=now - GLOBAL_WINDOW))
        return {"spend": spend, "max_budget": None}

    async def global_spend_logs(self, body: "Body", query: dict) -> list:
        await self._fresh()
        now = self.gw.clock.now()
        token = await key_id_of(self.gw.store, query.get("api_key"))
        rows = await self.reports.by_day(SpendFilter(start=now - GLOBAL_WINDOW, key_id=token))
        out = [{"date": _day(day), "spend": spend} for day, spend in rows]
        if token is not None:
            for row in out:
                row["api_key"] = token
        return out

    async def global_spend_report(self, body: "Body", query: dict) -> list:
        start, end = date_range(query, required=True)
        group_by = query.get("group_by") or "team"
        if group_by not in ("team", "customer", "api_key", "user", "model"):
            raise bad_request("group_by: expected team, customer, api_key, user or model.", "group_by")
        await self._fresh()
        token = await key_id_of(self.gw.store, query.get("api_key"))
        user = query.get("internal_user_id") or None
        where = SpendFilter(start=start, end=end, key_id=token, user_id=user, team_id=query.get("team_id") or None)
        if token is not None or user is not None:
            group_by = "api_key"  # LiteLLM: a key or user filter answers per key
        if group_by in ("team", "customer"):
            return await self._per_day(group_by, where)
        column, detail, name, details = {
            "api_key": ("key_id", "model", "api_key", "model_details"),
            "user": ("user_id", "model", "user", "model_details"),
            "model": ("model", "key_id", "model", "api_key_details"),
        }[group_by]
        grouped: dict[Any, dict] = {}
        for value, sub, cost, tokens_in, tokens_out in await self.reports.by_pair(column, detail, where):
            entry = grouped.setdefault(
                value, {name: value, "total_cost": 0.0, "total_input_tokens": 0, "total_output_tokens": 0, details: []}
            )
            entry["total_cost"] += cost or 0.0
            entry["total_input_tokens"] += int(tokens_in or 0)
            entry["total_output_tokens"] += int(tokens_out or 0)
            entry[details].append(
                {
                    "api_key" if detail == "key_id" else "model": sub,
                    "total_cost": cost or 0.0,
                    "total_input_tokens": int(tokens_in or 0),
                    "total_output_tokens": int(tokens_out or 0),
                }
            )
        return sorted(grouped.values(), key=lambda e: -e["total_cost"])

    async def _per_day(self, group_by: str, where: SpendFilter) -> list:
        """LiteLLM's team (and customer) report: per day, per team, the spend of each key and model."""
        column = "team_id" if group_by == "team" else "user_id"
        rows = await self.reports.by_day_and(column, where)
        names: dict[str, str] = {}
        if group_by == "team":
            for team in await self.gw.store.list_teams(limit=10_000):
                names[team.team_id] = team.team_alias or team.team_id
        days: dict[float, dict[Any, dict]] = {}
        for day, value, model, token, spend, tokens in rows:
            if group_by == "team":
                label = names.get(value, value) if value else "Unassigned Team"
                entry = days.setdefault(day, {}).setdefault(label, {"team_name": label, "total_spend": 0.0, "metadata": []})
            else:
                entry = days.setdefault(day, {}).setdefault(value, {"customer": value, "total_spend": 0.0, "metadata": []})
            entry["total_spend"] += spend or 0.0
            entry["metadata"].append({"model": model, "api_key": token, "spend": spend or 0.0, "total_tokens": int(tokens or 0)})
        field = "teams" if group_by == "team" else "customers"
        return [
            {"group_by_day": datetime.fromtimestamp(day, timezone.utc).isoformat(), field: list(groups.values())}
            for day, groups in sorted(days.items())
        ]

    # --- tags, cost estimates, daily activity ---------------------------------------------------

    async def spend_tags(self, body: "Body", query: dict) -> list:
        start, end = date_range(query)
        tags = [t for t in (query.get("tags") or "").split(",") if t] or None
        await self._fresh()
        rows = await self.reports.tags(start, end, tags)
        return [{"individual_request_tag": tag, "log_count": count, "total_spend": spend or 0.0} for tag, count, spend in rows]

    async def spend_calculate(self, body: "Body", query: dict) -> dict:
        """What a request would cost (``model`` + ``messages``: the input only, estimated), or what an
        answer cost (``completion_response`` with its ``usage``), at the price keystile charges."""
        from keystile.translate.count_tokens import estimate_input_tokens

        model = body.string("model")
        answer = body.mapping("completion_response")
        if answer is not None:
            model = model or (answer.get("model") if isinstance(answer.get("model"), str) else None)
            usage_raw = answer.get("usage")
            if not isinstance(usage_raw, dict):
                raise bad_request("completion_response.usage: required, an object with the token counts.", "completion_response")
            usage = usage_from_openai(usage_raw) if "prompt_tokens" in usage_raw else usage_from_anthropic(usage_raw)
        elif model is not None:
            messages = body.data.get("messages")
            if not isinstance(messages, list):
                raise bad_request("messages: required with model, a list of messages.", "messages")
            try:
                tokens = estimate_input_tokens({"messages": messages, "system": body.data.get("system")})
            except GatewayError as error:
                raise bad_request(f"messages: {error.message}", "messages") from None
            from keystile.accounting.usage import Usage

            usage = Usage(input_tokens=tokens)
        else:
            raise bad_request("model: give model and messages, or completion_response.", "model")
        if not model:
            raise bad_request("model: required (or completion_response.model).", "model")
        price = self._price(model)
        if price is None:
            raise bad_request(f"model: no price is known for {model[:200]!r}.", "model")
        return {"cost": cost_of(usage, price)}

    def _price(self, model: str):  # type: ignore[no-untyped-def]
        """The price keystile charges for ``model``: its group's first deployment, else the price table."""
        group = self.gw.router.group(model)
        accountant = self.gw.accountant
        if group is not None:
            for deployment in group.deployments:
                price = accountant.price(self.gw.router.concrete(deployment, model))
                if price is not None:
                    return price
        return price_for(model, accountant.table)

    async def daily_activity(self, body: "Body", query: dict) -> dict:
        """LiteLLM's ``SpendAnalyticsPaginatedResponse``: per UTC day, metrics and their breakdown."""
        start, end = date_range(query)
        now = self.gw.clock.now()
        if start is None:
            start = (end or now) - GLOBAL_WINDOW
        page = min(positive_int(query.get("page"), 1, "page"), 1_000_000)
        size = min(positive_int(query.get("page_size"), 50, "page_size"), 1000)
        await self._fresh()
        where = SpendFilter(
            start=start, end=end, key_id=await key_id_of(self.gw.store, query.get("api_key")), user_id=query.get("user_id") or None,
            model=query.get("model") or None,
        )
        days: dict[float, dict] = {}
        totals = _metrics()
        for day, group, provider, token, alias, team, n, ok, failed, prompt, completion, cache_read, cache_write, spend in (
            await self.reports.daily_activity(where)
        ):
            entry = days.setdefault(day, {"date": _day(day), "metrics": _metrics(), "breakdown": _breakdown()})
            row = _metrics(spend, prompt, completion, cache_read, cache_write, n, ok, failed)
            for target in (entry["metrics"], totals):
                _add(target, row)
            breakdown = entry["breakdown"]
            for kind, name, metadata in (
                ("models", group, {}),
                ("model_groups", group, {}),
                ("providers", provider or "unknown", {}),
                ("api_keys", token or "master key", {"key_alias": alias, "team_id": team}),
            ):
                slot = breakdown[kind].setdefault(name, {"metrics": _metrics(), "metadata": metadata})
                _add(slot["metrics"], row)
        ordered = [days[d] for d in sorted(days)]
        pages = max(1, math.ceil(len(ordered) / size))
        return {
            "results": ordered[(page - 1) * size: page * size],
            "metadata": {
                "total_spend": totals["spend"],
                "total_prompt_tokens": totals["prompt_tokens"],
                "total_completion_tokens": totals["completion_tokens"],
                "total_tokens": totals["total_tokens"],
                "total_api_requests": totals["api_requests"],
                "total_successful_requests": totals["successful_requests"],
                "total_failed_requests": totals["failed_requests"],
                "total_cache_read_input_tokens": totals["cache_read_input_tokens"],
                "total_cache_creation_input_tokens": totals["cache_creation_input_tokens"],
                "page": page,
                "total_pages": pages,
                "has_more": page < pages,
            },
        }

    # --- the spend log, paged (LiteLLM's /spend/logs/ui) -----------------------------------------

    async def spend_logs_page(self, body: "Body", query: dict) -> dict:
        from keystile.server.admin import _log_view

        start, end = date_range(query)
        page = min(positive_int(query.get("page"), 1, "page"), 1_000_000)
        size = min(positive_int(query.get("page_size"), 50, "page_size"), 500)
        status = query.get("status_filter") or None
        if status not in (None, "success", "failure"):
            raise bad_request("status_filter: expected success or failure.", "status_filter")
        await self._fresh()
        where = SpendFilter(
            start=start, end=end, key_id=await key_id_of(self.gw.store, query.get("api_key")), user_id=query.get("user_id") or None,
            team_id=query.get("team_id") or None, model=query.get("model") or None, key_alias=query.get("key_alias") or None,
        )
        request_id = query.get("request_id")
        if request_id:
            rows = await self.gw.store.spend_logs(request_id=request_id, limit=1)
            rows, total = rows, len(rows)
        else:
            rows, total = await self.reports.log_page(where, status=status, limit=size, offset=(page - 1) * size)
        return {
            "data": [_log_view(r) for r in rows],
            "total": total,
            "page": page,
            "page_size": size,
            "total_pages": max(1, math.ceil(total / size)),
        }

    # --- keystile's overview for the admin UI ------------------------------------------------------

    async def activity(self, body: "Body", query: dict) -> dict:
        """Requests, errors, spend, tokens and latency per time bucket, and the top keys, users, teams and models."""
        now = self.gw.clock.now()
        start, end = date_range(query)
        end = end if end is not None else now
        start = start if start is not None else end - DAY
        span = max(end - start, 60.0)
        default_bucket = 3600.0 if span <= 2 * DAY else DAY
        bucket = float(min(positive_int(query.get("bucket"), int(default_bucket), "bucket"), 366 * 86400))
        if bucket < 60:
            raise bad_request("bucket: at least 60 seconds.", "bucket")
        if span / bucket > MAX_BUCKETS:
            raise bad_request(f"bucket: the range would need more than {MAX_BUCKETS} buckets; choose a wider one.", "bucket")
        await self._fresh()
        where = SpendFilter(start=start, end=end)
        series = [
            {
                "ts": ts,
                "requests": int(n or 0),
                "errors": int(errors or 0),
                "spend": spend or 0.0,
                "tokens": int(tokens or 0),
                "latency_ms_avg": round(avg, 3) if avg is not None else None,
                "latency_ms_max": round(peak, 3) if peak is not None else None,
            }
            for ts, n, errors, spend, tokens, avg, peak in await self.reports.series(where, bucket)
        ]
        top = {}
        for name, column in (("keys", "key_id"), ("users", "user_id"), ("teams", "team_id"), ("models", "model")):
            entries = []
            for row in await self.reports.top(column, where):
                entry = {"id": row[0], "requests": int(row[1] or 0), "spend": row[2] or 0.0, "tokens": int(row[3] or 0)}
                if column == "key_id":
                    entry["key_alias"] = row[4]
                entries.append(entry)
            top[name] = entries
        return {
            "start": start,
            "end": end,
            "bucket_seconds": bucket,
            "series": series,
            "totals": {
                "requests": sum(s["requests"] for s in series),
                "errors": sum(s["errors"] for s in series),
                "spend": sum(s["spend"] for s in series),
                "tokens": sum(s["tokens"] for s in series),
            },
            "top": top,
        }


def _metrics(spend=0.0, prompt=0, completion=0, cache_read=0, cache_write=0, n=0, ok=0, failed=0) -> dict:  # type: ignore[no-untyped-def]
    prompt_all = int(prompt or 0) + int(cache_read or 0) + int(cache_write or 0)
    return {
        "spend": spend or 0.0,
        "prompt_tokens": prompt_all,
        "completion_tokens": int(completion or 0),
        "total_tokens": prompt_all + int(completion or 0),
        "api_requests": int(n or 0),
        "successful_requests": int(ok or 0),
        "failed_requests": int(failed or 0),
        "cache_read_input_tokens": int(cache_read or 0),
        "cache_creation_input_tokens": int(cache_write or 0),
    }


def _breakdown() -> dict:
    return {"models": {}, "model_groups": {}, "providers": {}, "api_keys": {}, "entities": {}}


def _add(target: dict, row: dict) -> None:
    for name, value in row.items():
        target[name] += value


def routes(admin: "Admin") -> dict[str, "Handler"]:
    api = SpendAPI(admin)
    h = admin.handler
    return {
        "/global/spend": h("GET", api.global_spend),
        "/global/spend/logs": h("GET", api.global_spend_logs),
        "/global/spend/report": h("GET", api.global_spend_report),
        "/spend/tags": h("GET", api.spend_tags),
        "/spend/calculate": h("POST", api.spend_calculate),
        "/spend/logs/ui": h("GET", api.spend_logs_page),
        "/user/daily/activity": h("GET", api.daily_activity),
        "/keystile/activity": h("GET", api.activity),
    }
