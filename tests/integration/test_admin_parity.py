"""LiteLLM's admin API, as scripts call it: answers in LiteLLM's shapes, figures from outside keystile.

Costs are worked out here from the public price list (claude-sonnet-4-5: $3 / $15 per million
input / output tokens; gpt-4o-2024-08-06: $2.50 / $10) times the usage the official SDKs
parsed from each answer — never read back from keystile and compared with itself.
"""

from __future__ import annotations

import json

import time
from datetime import datetime, timezone
from typing import Iterator

import anthropic
import httpx
import openai
import pytest

from tests.services import create_database, drop_database
from tests.integration.harness import (
    MASTER_KEY,
    UPSTREAM_ANTHROPIC_KEY,
    UPSTREAM_OPENAI_KEY,
    GatewayProcess,
    anthropic_body,
    free_port,
    openai_body,
    standard_config,
)

SONNET = (3.0e-6, 15.0e-6)
GPT4O = (2.5e-6, 10.0e-6)
TODAY = datetime.now(timezone.utc).strftime("%Y-%m-%d")


@pytest.fixture(scope="module")
def gw(upstream) -> Iterator[GatewayProcess]:
    with GatewayProcess(standard_config(upstream.url)) as gateway:
        yield gateway


def wait_for(condition, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_virtual_key_reads_its_own_key_info_and_only_its_own(gw: GatewayProcess) -> None:
    mine = gw.create_key(key_alias="self-info", max_budget=3)
    other = gw.create_key(key_alias="someone-else")
    own = httpx.get(f"{gw.url}/key/info", headers={"authorization": f"Bearer {mine}"}, timeout=10)
    assert own.status_code == 200
    assert own.json()["info"]["key_alias"] == "self-info" and own.json()["info"]["max_budget"] == 3
    named = httpx.get(f"{gw.url}/key/info", params={"key": mine}, headers={"x-api-key": mine}, timeout=10)
    assert named.status_code == 200 and named.json()["key"] == own.json()["key"]
    theirs = httpx.get(f"{gw.url}/key/info", params={"key": other}, headers={"authorization": f"Bearer {mine}"}, timeout=10)
    assert theirs.status_code == 403
    assert other not in theirs.text
    # the rest of the admin API still needs the master key
    assert httpx.get(f"{gw.url}/key/list", headers={"authorization": f"Bearer {mine}"}, timeout=10).status_code == 403


def test_regenerate_with_the_key_in_the_path(gw: GatewayProcess) -> None:
    old = gw.create_key(key_alias="path-regen", rpm_limit=7)
    answer = httpx.post(f"{gw.url}/key/{old}/regenerate", json={}, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    new = answer.json()["key"]
    assert new != old and answer.json()["key_alias"] == "path-regen" and answer.json()["rpm_limit"] == 7
    with anthropic.Anthropic(base_url=gw.url, api_key=old, max_retries=0) as client:
        with pytest.raises(anthropic.AuthenticationError):
            client.messages.create(**anthropic_body())
    with anthropic.Anthropic(base_url=gw.url, api_key=new, max_retries=0) as client:
        assert client.messages.create(**anthropic_body()).content
    missing = httpx.post(f"{gw.url}/key/sk-ks-nope-000000000000/regenerate", json={}, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=10)
    assert missing.status_code == 404


def test_tags_spend_reports_and_log_rows_in_litellms_shapes(gw: GatewayProcess, upstream) -> None:  # type: ignore[no-untyped-def]
    gw.admin("POST", "/team/new", json={"team_id": "parity-team", "team_alias": "Parity Team"})
    gw.admin("POST", "/user/new", json={"user_id": "parity-user", "auto_create_key": False})
    key = gw.create_key(key_alias="parity-key", team_id="parity-team", user_id="parity-user")
    key_hash = gw.admin("GET", "/key/info", params={"key": key}).json()["key"]
    costs = []
    with anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0) as claude:
        raw = claude.messages.with_raw_response.create(**anthropic_body(text="one"), extra_headers={"x-keystile-tags": "proj-a, job-7"})
        usage = raw.parse().usage
        costs.append(usage.input_tokens * SONNET[0] + usage.output_tokens * SONNET[1])
        first_id, first_tokens = raw.headers["x-keystile-request-id"], usage.input_tokens + usage.output_tokens
        usage = claude.messages.create(**anthropic_body(text="two"), extra_headers={"x-litellm-tags": "proj-a"}).usage
        costs.append(usage.input_tokens * SONNET[0] + usage.output_tokens * SONNET[1])
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0) as gpt:
        usage = gpt.chat.completions.create(**openai_body(text="three"), extra_body={"metadata": {"tags": ["proj-b"]}}).usage
        costs.append(usage.prompt_tokens * GPT4O[0] + usage.completion_tokens * GPT4O[1])
    # The tags are keystile's to read: the upstream's own metadata would refuse them.
    assert "metadata" not in json.loads(upstream.requests()[-1]["body"])
    admin = gw.admin

    tags = {row["individual_request_tag"]: row for row in admin("GET", "/spend/tags").json()}
    assert tags["proj-a"]["log_count"] == 2 and tags["proj-a"]["total_spend"] == pytest.approx(costs[0] + costs[1], rel=1e-9)
    assert tags["job-7"]["log_count"] == 1 and tags["job-7"]["total_spend"] == pytest.approx(costs[0], rel=1e-9)
    assert tags["proj-b"]["log_count"] == 1 and tags["proj-b"]["total_spend"] == pytest.approx(costs[2], rel=1e-9)

    row = admin("GET", "/spend/logs", params={"request_id": first_id}).json()[0]
    assert row["call_type"] == "anthropic_messages" and row["request_tags"] == ["proj-a", "job-7"]
    assert row["total_tokens"] == first_tokens and row["spend"] == pytest.approx(costs[0], rel=1e-9)
    assert row["metadata"]["user_api_key_alias"] == "parity-key" and row["metadata"]["user_api_key_team_id"] == "parity-team"
    assert row["metadata"]["status"] == "success"
    start = datetime.fromisoformat(row["startTime"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(row["endTime"].replace("Z", "+00:00"))
    assert start <= end
    chat_rows = admin("GET", "/spend/logs", params={"api_key": key, "model": "gpt-test"}).json()
    assert chat_rows[0]["call_type"] == "acompletion" and chat_rows[0]["request_tags"] == ["proj-b"]

    total = sum(costs)
    report = admin("GET", "/global/spend/report", params={"start_date": TODAY, "end_date": TODAY, "group_by": "api_key"}).json()
    mine = next(r for r in report if r["api_key"] == key_hash)
    assert mine["total_cost"] == pytest.approx(total, rel=1e-9)
    assert {d["model"] for d in mine["model_details"]} == {"claude-test", "gpt-test"}
    teams = admin("GET", "/global/spend/report", params={"start_date": TODAY, "end_date": TODAY}).json()
    assert teams[0]["group_by_day"].startswith(TODAY)
    team = next(t for t in teams[0]["teams"] if t["team_name"] == "Parity Team")
    assert team["total_spend"] == pytest.approx(total, rel=1e-9)
    assert {(m["model"], m["api_key"]) for m in team["metadata"]} == {("claude-test", key_hash), ("gpt-test", key_hash)}
    users = admin("GET", "/global/spend/report", params={"start_date": TODAY, "end_date": TODAY, "group_by": "user"}).json()
    assert next(u for u in users if u["user"] == "parity-user")["total_cost"] == pytest.approx(total, rel=1e-9)
    models = admin("GET", "/global/spend/report", params={"start_date": TODAY, "end_date": TODAY, "group_by": "model"}).json()
    assert next(m for m in models if m["model"] == "gpt-test")["total_cost"] >= costs[2] * (1 - 1e-9)
    for bad, param in (({"end_date": TODAY}, "start_date"), ({"start_date": TODAY, "end_date": TODAY, "group_by": "planet"}, "group_by"),
                       ({"start_date": "yesterday", "end_date": TODAY}, "start_date")):
        answer = admin("GET", "/global/spend/report", params=bad)
        assert answer.status_code == 400 and answer.json()["error"]["param"] == param, answer.text

    assert admin("GET", "/global/spend").json()["spend"] >= total * (1 - 1e-9)
    per_day = admin("GET", "/global/spend/logs", params={"api_key": key}).json()
    assert per_day == [{"date": TODAY, "spend": pytest.approx(total, rel=1e-9), "api_key": key_hash}]

    activity = admin("GET", "/user/daily/activity", params={"api_key": key}).json()
    day = activity["results"][0]
    assert day["date"] == TODAY and day["metrics"]["api_requests"] == 3 and day["metrics"]["successful_requests"] == 3
    assert day["metrics"]["spend"] == pytest.approx(total, rel=1e-9)
    assert day["breakdown"]["api_keys"][key_hash]["metadata"] == {"key_alias": "parity-key", "team_id": "parity-team"}
    assert set(day["breakdown"]["models"]) == {"claude-test", "gpt-test"}
    assert activity["metadata"]["total_api_requests"] == 3 and activity["metadata"]["page"] == 1

    info = admin("GET", "/user/info", params={"user_id": "parity-user"}).json()
    assert [k["key_alias"] for k in info["keys"]] == ["parity-key"] and info["keys"][0]["spend"] == pytest.approx(total, rel=1e-9)

    page = admin("GET", "/spend/logs/ui", params={"key_alias": "parity-key", "page_size": 2}).json()
    assert page["total"] == 3 and page["total_pages"] == 2 and len(page["data"]) == 2


def test_spend_calculate(gw: GatewayProcess) -> None:
    answer = gw.admin("POST", "/spend/calculate", json={"completion_response": {"model": "gpt-test", "usage": {"prompt_tokens": 1000, "completion_tokens": 500}}})
    assert answer.status_code == 200 and answer.json()["cost"] == pytest.approx(1000 * GPT4O[0] + 500 * GPT4O[1], rel=1e-12)
    short = gw.admin("POST", "/spend/calculate", json={"model": "claude-test", "messages": [{"role": "user", "content": "hi"}]}).json()["cost"]
    long = gw.admin("POST", "/spend/calculate", json={"model": "claude-test", "messages": [{"role": "user", "content": "hi " * 2000}]}).json()["cost"]
    assert 0 < short < long
    for body, param in (({}, "model"), ({"model": "claude-test"}, "messages"), ({"model": "no-such-model-xyz", "messages": []}, "model"),
                        ({"completion_response": {"model": "gpt-test"}}, "completion_response")):
        bad = gw.admin("POST", "/spend/calculate", json=body)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == param, bad.text


def test_model_info_and_group_info_never_show_a_secret(gw: GatewayProcess) -> None:
    for path in ("/model/info", "/v1/model/info"):
        data = gw.admin("GET", path).json()["data"]
        entry = next(d for d in data if d["model_info"]["id"] == "claude-test#0")
        assert entry["model_name"] == "claude-test" and entry["litellm_params"]["model"] == "anthropic/claude-sonnet-4-5-20250929"
        assert entry["model_info"]["input_cost_per_token"] == SONNET[0] and entry["model_info"]["db_model"] is False
        text = gw.admin("GET", path).text
        assert UPSTREAM_ANTHROPIC_KEY not in text and UPSTREAM_OPENAI_KEY not in text
    groups = {g["model_group"]: g for g in gw.admin("GET", "/model_group/info").json()["data"]}
    assert groups["gpt-test"]["providers"] == ["openai"] and groups["embed-test"]["mode"] == "embedding"
    # a virtual key sees only the models it may use
    limited = gw.create_key(models=["gpt-test"])
    seen = httpx.get(f"{gw.url}/model/info", headers={"authorization": f"Bearer {limited}"}, timeout=10).json()["data"]
    assert {d["model_name"] for d in seen} == {"gpt-test"}


def test_health_in_litellms_shape_with_a_live_check(gw: GatewayProcess) -> None:
    health = gw.admin("GET", "/health").json()
    assert health["healthy_count"] == len(health["healthy_endpoints"]) and health["unhealthy_count"] == 0
    assert {"model", "model_name", "model_id", "api_base"} <= set(health["healthy_endpoints"][0])
    assert UPSTREAM_ANTHROPIC_KEY not in str(health)
    live = gw.admin("GET", "/health", params={"model": "claude-test"}).json()
    assert live["healthy_count"] == 1 and live["healthy_endpoints"][0]["model_id"] == "claude-test#0"
    unknown = gw.admin("GET", "/health", params={"model": "no-such-group"})
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "model"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def test_models_added_at_run_time_are_served_without_a_restart_and_by_every_instance(upstream, tmp_path, request, backend) -> None:
    """Two instances on one database (SQLite file; or PostgreSQL with the Redis broadcast): a model added
    through either is served by both at once, without a restart, and deleting it removes it everywhere."""
    config = standard_config(upstream.url)
    created = None
    if backend == "sqlite":
        env = {"KEYSTILE_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}"}
    else:
        services = request.getfixturevalue("services")
        created = create_database(services.postgres, "ks_models")
        env = {"KEYSTILE_DATABASE_URL": created, "KEYSTILE_REDIS_URL": services.redis}
    first = GatewayProcess(config, env=env).start()
    second = GatewayProcess(config, env=env).start()
    try:
        key = first.create_key()
        body = {
            "model_name": "runtime-gpt",
            "litellm_params": {"model": "openai/gpt-4o", "api_base": f"{upstream.url}/v1", "api_key": "sk-runtime-upstream-SECRET-77"},
            "model_info": {"id": "runtime-gpt-1"},
        }
        added = first.admin("POST", "/model/new", json=body)
        assert added.status_code == 200, added.text
        assert added.json()["model_id"] == "runtime-gpt-1" and "SECRET-77" not in added.text
        for gateway in (first, second):
            with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as client:
                answer = wait_for(lambda: _try_chat(client, "runtime-gpt"), what="the run-time model on every instance")
            assert answer.choices[0].message.content
        info = second.admin("GET", "/model/info", params={"litellm_model_id": "runtime-gpt-1"}).json()["data"][0]
        assert info["model_info"]["db_model"] is True and "SECRET-77" not in str(info)
        last = upstream.requests()[-1]
        assert ["authorization", "Bearer sk-runtime-upstream-SECRET-77"] in last["headers"]  # the stored upstream key is used
        assert first.admin("POST", "/model/new", json=body).json()["error"]["param"] == "model_info"  # the id is taken
        typo = first.admin("POST", "/model/new", json={"model_name": "x", "litellm_params": {"model": "opneai/gpt-4o"}})
        assert typo.status_code == 400 and "did you mean 'openai'" in typo.json()["error"]["message"]
        assert typo.json()["error"]["param"] == "litellm_params"
        assert first.admin("POST", "/model/new", json={"litellm_params": {"model": "openai/gpt-4o"}}).json()["error"]["param"] == "model_name"
        configured = first.admin("POST", "/model/delete", json={"id": "gpt-test#0"})
        assert configured.status_code == 400 and "configuration file" in configured.json()["error"]["message"]

        assert first.admin("POST", "/model/delete", json={"id": "runtime-gpt-1"}).status_code == 200
        for gateway in (first, second):
            with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as client:
                wait_for(lambda: _is_gone(client, "runtime-gpt"), what="the deleted model gone from every instance")
        assert first.admin("POST", "/model/delete", json={"id": "runtime-gpt-1"}).status_code == 404
        assert "sk-runtime-upstream-SECRET-77" not in first.log() + second.log()
    finally:
        first.stop()
        second.stop()
        if created is not None:
            drop_database(request.getfixturevalue("services").postgres, created)


def _try_chat(client: openai.OpenAI, model: str):
    try:
        return client.chat.completions.create(**openai_body(model=model))
    except openai.NotFoundError:
        return None


def _is_gone(client: openai.OpenAI, model: str) -> bool:
    try:
        client.chat.completions.create(**openai_body(model=model))
    except openai.NotFoundError:
        return True
    return False


def test_health_live_check_reports_an_unreachable_deployment(upstream) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    config = standard_config(upstream.url, extra_models=f"""
        - name: dead-model
          provider: openai
          model: gpt-4o
          api_base: {dead}/v1
          api_key: sk-dead
          connect_timeout: 2s
        """)
    with GatewayProcess(config) as gateway:
        live = gateway.admin("GET", "/health", params={"model": "dead-model"}).json()
        assert live["healthy_count"] == 0 and live["unhealthy_count"] == 1
        assert live["unhealthy_endpoints"][0]["model_id"] == "dead-model#0" and live["unhealthy_endpoints"][0]["error"]
