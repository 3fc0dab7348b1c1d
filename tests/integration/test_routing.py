"""Routing and resilience through the real server against the real mock upstream told to fail.

Every model group here has its own upstream model ids, so a fault rule matching one model
id breaks exactly one deployment. Cooldowns, timeouts and backoffs are short.
"""

from __future__ import annotations

import re
import textwrap
import time
from typing import Any, Iterator

import anthropic
import httpx
import openai
import orjson
import pytest

from keystile.testing.upstream import MockUpstreamThread
from tests.integration.harness import GatewayProcess, anthropic_body, openai_body

COOLDOWN = 1.5


def routing_config(up: str) -> str:
    def deployment(name: str, model: str, provider: str = "anthropic", **extra: Any) -> str:
        base = up if provider == "anthropic" else f"{up}/v1"
        fields = "".join(f"\n    {k}: {v}" for k, v in extra.items())
        return f"  - name: {name}\n    provider: {provider}\n    model: {model}\n    id: {model}\n    api_base: {base}\n    api_key: k{fields}\n"

    models = [
        deployment("pair", "pair-bad"),
        deployment("pair", "pair-good"),
        deployment("cool", "cool-bad"),
        deployment("cool", "cool-good"),
        deployment("opus", "opus-1"),
        deployment("opus", "opus-2"),
        deployment("gpt-fallback", "fb-gpt", "openai"),
        deployment("retry-after", "ra-1"),
        deployment("hang", "hang-1", timeout=0.5),
        deployment("hang-gpt", "hang-gpt-1", "openai", timeout=0.5),
        deployment("hang-long", "hang-long-1", timeout=30),
        deployment("slow", "slow-1", timeout=0.5),
        deployment("slow", "slow-2", timeout=0.5),
        deployment("idle", "idle-1", stream_idle_timeout=0.3),
        deployment("stream", "stream-1"),
        deployment("stream-gpt", "stream-gpt-1", "openai"),
        deployment("flaky", "flaky-1"),
        deployment("flaky-once", "flaky-once-1", max_retries=0),
        deployment("cw-small", "cw-small-1"),
        deployment("cw-large", "cw-large-1"),
        deployment("client-error", "client-error-1"),
    ]
    router = f"""\
        router:
          num_retries: 2
          retry_backoff: 0.01
          retry_after_cap: 1.5
          max_retries_cap: 3
          timeout_cap: 1
          cooldown_failures: 2
          cooldown_window: 30
          cooldown_seconds: {COOLDOWN}
          fallbacks:
            opus: [gpt-fallback]
          context_window_fallbacks:
            cw-small: [cw-large]
        """
    return "models:\n" + "".join(models) + textwrap.dedent(router)


@pytest.fixture(scope="module")
def gateway(upstream: MockUpstreamThread) -> Iterator[GatewayProcess]:
    """This module's gateway (conftest's ``key``, ``claude`` and ``gpt`` fixtures use it)."""
    with GatewayProcess(routing_config(upstream.url)) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def gw(gateway: GatewayProcess) -> GatewayProcess:
    return gateway


def messages(gw: GatewayProcess, key: str, model: str, *, headers: dict | None = None, timeout: float = 10, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/messages",
        json=anthropic_body(model=model, **body),
        headers={"x-api-key": key, "anthropic-version": "2023-06-01", **(headers or {})},
        timeout=timeout,
    )


def chat(gw: GatewayProcess, key: str, model: str, *, headers: dict | None = None, timeout: float = 10, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/chat/completions",
        json=openai_body(model=model, **body),
        headers={"authorization": f"Bearer {key}", **(headers or {})},
        timeout=timeout,
    )


def fail(model: str, status: int, *, headers: dict | None = None, body: Any = None, times: int | None = None) -> dict:
    action: dict = {"type": "status", "status": status}
    if headers:
        action["headers"] = headers
    if body is not None:
        action["body"] = body
    rule: dict = {"match": {"model": model}, "action": action}
    if times is not None:
        rule["times"] = times
    return rule


def sent_models(upstream: MockUpstreamThread) -> list[str]:
    return [orjson.loads(r["body"])["model"] for r in upstream.requests() if r["body"]]


def health(gw: GatewayProcess) -> dict[str, dict]:
    response = gw.admin("GET", "/health")
    assert response.status_code == 200, response.text
    return {row["id"]: row for row in response.json()["deployments"]}


def metric(gw: GatewayProcess, name: str, **labels: str) -> float:
    text = httpx.get(f"{gw.url}/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}{{{want}}} in /metrics")


def spend_rows(gw: GatewayProcess, key: str) -> list[dict]:
    response = gw.admin("GET", "/spend/logs", params={"api_key": key})
    assert response.status_code == 200, response.text
    return response.json()


def sse_events(text: str) -> list[tuple[str | None, Any]]:
    out = []
    for block in text.strip().split("\n\n"):
        name = None
        data = None
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                raw = line[5:].strip()
                data = raw if raw == "[DONE]" else orjson.loads(raw)
        out.append((name, data))
    return out


# --- load balancing and retries ---------------------------------------------------------------


def test_group_with_one_failing_deployment_keeps_answering(gw, key, upstream):
    upstream.set_faults([fail("pair-bad", 500)])
    retried = 0
    for _ in range(20):
        response = messages(gw, key, "pair")
        assert response.status_code == 200, response.text
        assert response.json()["content"][0]["text"].startswith("Hello from keystile mock")
        assert response.headers["x-keystile-deployment"] == "pair-good"
        assert response.headers["x-keystile-model-group"] == "pair"
        retried += response.headers["x-keystile-attempts"] == "2"
        if "pair-bad" in sent_models(upstream) and retried:
            break
    assert "pair-bad" in sent_models(upstream) and retried
    assert metric(gw, "keystile_retries_total", model="pair") >= 1
    row = next(r for r in spend_rows(gw, key) if r["attempts"] == 2)
    assert (row["model_group"], row["deployment"], row["status"]) == ("pair", "pair-good", 200)


def test_request_max_retries_header_lowers_the_configured_retries(gw, key, upstream):
    upstream.set_faults([fail("flaky-1", 500)])
    for header, attempts in (("0", 1), ("1", 2), ("99", 3)):  # 99: never more than num_retries (2)
        upstream.clear_requests()
        response = messages(gw, key, "flaky", headers={"x-keystile-max-retries": header})
        assert response.status_code == 500
        assert response.json()["error"]["type"] == "api_error"
        assert response.headers["x-keystile-attempts"] == str(attempts)
        assert len(upstream.requests()) == attempts


def test_deployment_max_retries_overrides_the_router_default(gw, key, upstream):
    upstream.set_faults([fail("flaky-once-1", 503)])
    response = messages(gw, key, "flaky-once")
    assert response.status_code == 503
    assert response.headers["x-keystile-attempts"] == "1" and len(upstream.requests()) == 1


def test_client_errors_are_not_retried_and_do_not_cool_down(gw, key, upstream):
    upstream.set_faults([fail("client-error-1", 400)])
    for _ in range(4):
        response = messages(gw, key, "client-error")
        assert response.status_code == 400 and response.headers["x-keystile-attempts"] == "1"
    state = health(gw)["client-error-1"]
    assert state["state"] == "healthy" and state["failures"] == 0 and state["inflight"] == 0


# --- retry-after --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers,least,most",
    [
        ({"retry-after": "1"}, 1.0, 1.4),
        ({"retry-after-ms": "600"}, 0.6, 1.0),
        ({"retry-after": "100"}, 1.5, 1.9),  # capped by router.retry_after_cap
    ],
)
def test_retry_after_is_honoured_up_to_the_cap(gw, key, upstream, headers, least, most):
    upstream.set_faults([fail("ra-1", 429, headers=headers, times=1)])
    start = time.monotonic()
    response = messages(gw, key, "retry-after")
    elapsed = time.monotonic() - start
    assert response.status_code == 200, response.text
    assert response.headers["x-keystile-attempts"] == "2"
    assert least <= elapsed < most, elapsed


def test_rate_limit_that_outlasts_the_retries_reaches_the_client_with_its_retry_after(gw, key, upstream):
    upstream.set_faults([fail("ra-1", 429, headers={"retry-after": "7"})])
    response = messages(gw, key, "retry-after", headers={"x-keystile-max-retries": "0"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["type"] == "rate_limit_error"


# --- cooldowns ----------------------------------------------------------------------------------


def test_failing_deployment_cools_down_is_skipped_and_comes_back(gw, key, upstream):
    upstream.set_faults([fail("cool-bad", 500)])
    for _ in range(40):
        assert messages(gw, key, "cool").status_code == 200
        if sent_models(upstream).count("cool-bad") >= 2:
            break
    assert sent_models(upstream).count("cool-bad") == 2
    state = health(gw)["cool-bad"]
    assert state["state"] == "cooling_down" and state["cooling_down_until"] > time.time()
    assert health(gw)["cool-good"]["state"] == "healthy"
    assert metric(gw, "keystile_deployment_cooling_down", deployment="cool-bad") == 1.0

    upstream.clear_requests()
    for _ in range(10):
        response = messages(gw, key, "cool")
        assert response.status_code == 200 and response.headers["x-keystile-attempts"] == "1"
    assert "cool-bad" not in sent_models(upstream)  # skipped while cooling down

    upstream.clear_faults()
    time.sleep(COOLDOWN + 0.1)
    assert health(gw)["cool-bad"]["state"] == "probing"
    for _ in range(40):
        assert messages(gw, key, "cool").status_code == 200
        if "cool-bad" in sent_models(upstream):
            break
    assert health(gw)["cool-bad"]["state"] == "healthy"
    assert metric(gw, "keystile_deployment_cooling_down", deployment="cool-bad") == 0.0


def test_health_needs_the_master_key(gw, key):
    assert httpx.get(f"{gw.url}/health", headers={"authorization": f"Bearer {key}"}).status_code in (401, 403)
    rows = health(gw)
    assert {"state", "inflight", "latency_ms", "error_rate", "cooling_down_until", "model_group"} <= set(rows["pair-good"])


# --- fallbacks ----------------------------------------------------------------------------------


def test_overloaded_primary_falls_back_across_formats(gw, key, upstream, claude):
    upstream.set_faults([fail("opus-1", 529), fail("opus-2", 529)])
    raw = claude.messages.with_raw_response.create(**anthropic_body(model="opus", text="fall back"))
    message = raw.parse()
    assert message.type == "message" and message.content[0].text == "Hello from keystile mock. You said: fall back"
    assert message.usage.input_tokens > 0
    assert raw.headers["x-keystile-model-group"] == "gpt-fallback"
    assert raw.headers["x-keystile-deployment"] == "fb-gpt"
    assert raw.headers["x-keystile-attempts"] == "4"  # 1 + 2 retries on opus, then the fallback
    sent = upstream.requests()
    assert [orjson.loads(r["body"])["model"] for r in sent][-1] == "fb-gpt" and sent[-1]["path"] == "/v1/chat/completions"
    assert sorted(set(sent_models(upstream)[:-1])) == ["opus-1", "opus-2"]

    with claude.messages.stream(**anthropic_body(model="opus", text="stream fallback")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from keystile mock. You said: stream fallback" and final.usage.output_tokens > 0

    rows = [r for r in spend_rows(gw, key) if r["status"] == 200]
    assert len(rows) == 2
    for row in rows:
        assert (row["model"], row["model_group"], row["deployment"], row["attempts"]) == ("opus", "gpt-fallback", "fb-gpt", 4)
        assert row["input_tokens"] > 0 and row["output_tokens"] > 0
    assert metric(gw, "keystile_fallbacks_total", model="opus", fallback="gpt-fallback") >= 2


def test_everything_overloaded_tells_the_client_the_truth(gw, key, upstream):
    upstream.set_faults([fail("opus-1", 529), fail("opus-2", 529), fail("fb-gpt", 503)])
    response = messages(gw, key, "opus", headers={"x-keystile-max-retries": "0"})
    assert response.status_code == 503  # the last attempt's answer, in the client's format
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "api_error"
    assert response.headers["x-keystile-model-group"] == "gpt-fallback"
    assert response.headers["x-keystile-attempts"] == "2"


def test_context_window_error_goes_to_the_context_window_fallback(gw, key, upstream):
    too_long = {"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 250000 tokens > 200000 maximum"}}
    upstream.set_faults([fail("cw-small-1", 400, body=too_long)])
    response = messages(gw, key, "cw-small")
    assert response.status_code == 200, response.text
    assert response.headers["x-keystile-model-group"] == "cw-large"
    assert response.headers["x-keystile-deployment"] == "cw-large-1"
    assert sent_models(upstream) == ["cw-small-1", "cw-large-1"]
    assert health(gw)["cw-small-1"]["failures"] == 0

    upstream.set_faults([fail("cw-small-1", 400, body=too_long), fail("cw-large-1", 400, body=too_long)])
    response = messages(gw, key, "cw-small")
    assert response.status_code == 400 and response.json() == too_long  # unmodified


# --- timeouts -----------------------------------------------------------------------------------


def test_hung_upstream_is_a_timely_504_in_each_format(gw, key, upstream):
    upstream.set_faults([{"match": {"model": "hang-1"}, "action": {"type": "hang"}},
                         {"match": {"model": "hang-gpt-1"}, "action": {"type": "hang"}}])
    start = time.monotonic()
    response = messages(gw, key, "hang", headers={"x-keystile-max-retries": "0"})
    assert time.monotonic() - start < 1.5
    assert response.status_code == 504
    assert response.json() == {"type": "error", "error": {"type": "timeout_error", "message": response.json()["error"]["message"]}}

    start = time.monotonic()
    response = chat(gw, key, "hang-gpt")  # with the default two retries: 3 × 0.5 s
    assert time.monotonic() - start < 3.0
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error" and response.json()["error"]["code"] == "upstream_timeout"
    assert response.headers["x-keystile-attempts"] == "3"


def test_request_timeout_header(gw, key, upstream):
    upstream.set_faults([{"match": {"model": "hang-long-1"}, "action": {"type": "hang"}}])
    start = time.monotonic()
    response = messages(gw, key, "hang-long", headers={"x-keystile-timeout": "0.3", "x-keystile-max-retries": "0"})
    assert response.status_code == 504
    assert time.monotonic() - start < 1.2


def test_request_timeout_header_is_capped_by_timeout_cap(gw, key, upstream):
    upstream.set_faults([{"match": {"model": "hang-long-1"}, "action": {"type": "hang"}}])
    start = time.monotonic()
    # Asks for 30 s (the deployment's own timeout too); router.timeout_cap: 1 wins.
    response = messages(gw, key, "hang-long", headers={"x-keystile-timeout": "30", "x-keystile-max-retries": "0"})
    assert response.status_code == 504
    assert 0.9 < time.monotonic() - start < 3.0


def test_slow_first_byte_moves_to_the_healthy_deployment(gw, key, upstream):
    upstream.set_faults([{"match": {"model": "slow-1"}, "action": {"type": "delay", "seconds": 3}}])
    for _ in range(20):
        start = time.monotonic()
        response = messages(gw, key, "slow")
        assert response.status_code == 200 and response.headers["x-keystile-deployment"] == "slow-2"
        assert time.monotonic() - start < 1.5
        if "slow-1" in sent_models(upstream):
            break
    assert "slow-1" in sent_models(upstream)


def test_stream_idle_timeout_ends_the_stream_with_an_error_event(gw, key, upstream):
    upstream.set_faults([{"match": {"model": "idle-1"}, "action": {"type": "event_delay", "seconds": 2}}])
    start = time.monotonic()
    response = messages(gw, key, "idle", stream=True)
    assert time.monotonic() - start < 1.5
    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[0][0] == "message_start"
    assert events[-1][0] == "error" and events[-1][1]["error"]["type"] == "timeout_error"


# --- streams: client disconnect, upstream failure mid-stream --------------------------------------


def test_client_disconnect_mid_stream_closes_the_upstream_connection(gw, key, upstream):
    upstream.set_faults([{"match": {"model": "stream-1"}, "action": {"type": "event_delay", "seconds": 0.3}}])
    with httpx.Client(timeout=10) as client:
        with client.stream(
            "POST",
            f"{gw.url}/v1/messages",
            json=anthropic_body(model="stream", stream=True),
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        ) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert next(lines) == "event: message_start"
            next(lines)
    assert_upstream_closed_within_a_second(upstream)
    logged = logged_row(gw, key)
    assert logged["status"] == 499 and logged["input_tokens"] > 0  # usage seen before the client left
    assert health(gw)["stream-1"]["inflight"] == 0


def test_client_giving_up_on_a_slow_answer_closes_the_upstream_connection(gw, key, upstream):
    upstream.set_faults([{"match": {"model": "hang-long-1"}, "action": {"type": "hang"}}])
    with pytest.raises(httpx.ReadTimeout):
        messages(gw, key, "hang-long", timeout=0.5)
    assert_upstream_closed_within_a_second(upstream)
    assert logged_row(gw, key)["status"] == 499
    assert health(gw)["hang-long-1"]["inflight"] == 0


def assert_upstream_closed_within_a_second(upstream: MockUpstreamThread) -> None:
    deadline = time.monotonic() + 1.0  # the client's connection is closed by now
    while time.monotonic() < deadline and upstream.stats()["disconnects_during_response"] < 1:
        time.sleep(0.01)
    assert upstream.stats()["disconnects_during_response"] == 1, upstream.stats()
    connection = upstream.requests()[-1]["connection"]
    closed = {c["id"]: c for c in upstream.call(upstream.server.connections)}[connection]
    assert closed["closed_by"] == "peer" and closed["closed_during_response"]


def logged_row(gw: GatewayProcess, key: str) -> dict:
    deadline = time.monotonic() + 3
    while not (rows := spend_rows(gw, key)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rows, "no spend-log row"
    return rows[0]


# A failure in the first chunk keystile reads is still retried (see the test below it); the
# mock writes the malformed event right after the others, so that case may take either path.
@pytest.mark.parametrize("fault", [{"type": "reset_after_events", "events": 3}, {"type": "malformed_after_events", "events": 3}])
def test_mid_stream_failure_is_an_error_the_anthropic_sdk_raises(gw, key, upstream, claude, fault):
    upstream.set_faults([{"match": {"model": "stream-1"}, "action": fault}])
    received = []
    with pytest.raises(anthropic.APIStatusError) as info:
        with claude.messages.stream(**anthropic_body(model="stream", text="cut me off")) as stream:
            for text in stream.text_stream:
                received.append(text)
    assert info.value.body["error"]["type"] == "api_error"
    assert "".join(received) != "Hello from keystile mock. You said: cut me off"


@pytest.mark.parametrize("fault", [{"type": "reset_after_events", "events": 3}, {"type": "malformed_after_events", "events": 3}])
@pytest.mark.parametrize("model,upstream_model", [("stream-gpt", "stream-gpt-1"), ("stream", "stream-1")])
def test_mid_stream_failure_is_an_error_the_openai_sdk_raises(gw, key, upstream, gpt, fault, model, upstream_model):
    upstream.set_faults([{"match": {"model": upstream_model}, "action": fault}])
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in gpt.chat.completions.create(model=model, messages=[{"role": "user", "content": "cut me off"}], stream=True):
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    assert re.search(r"upstream", str(info.value.message), re.I)
    assert "".join(received) != "Hello from keystile mock. You said: cut me off"


def test_stream_that_fails_in_its_first_event_is_retried(gw, key, upstream, claude, gpt):
    """A 200 followed at once by an in-band overloaded_error: nothing reached the client, so retry."""
    overloaded_once = {"type": "error_after_events", "events": 0}
    upstream.set_faults([{"match": {"model": "stream-1"}, "times": 1, "action": overloaded_once}])
    with claude.messages.with_streaming_response.create(**anthropic_body(model="stream", text="again", stream=True)) as raw:
        assert raw.headers["x-keystile-attempts"] == "2"
        events = sse_events(raw.read().decode())
    assert [name for name, _ in events][-1] == "message_stop"
    assert "error" not in [name for name, _ in events]

    upstream.set_faults([{"match": {"model": "stream-gpt-1"}, "times": 1, "action": overloaded_once}])
    chunks = list(gpt.chat.completions.create(model="stream-gpt", messages=[{"role": "user", "content": "again"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from keystile mock. You said: again"


def test_stream_that_always_fails_in_its_first_event_is_an_error_status(gw, key, upstream):
    upstream.set_faults([{"match": {"model": "stream-1"}, "action": {"type": "error_after_events", "events": 0}}])
    response = messages(gw, key, "stream", stream=True, headers={"x-keystile-max-retries": "1"})
    assert response.status_code == 529 and response.headers["x-keystile-attempts"] == "2"
    assert response.json() == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}  # as the upstream said it
    translated = chat(gw, key, "stream", stream=True, headers={"x-keystile-max-retries": "0"})
    assert translated.status_code == 529 and translated.json()["error"]["message"] == "Overloaded"
