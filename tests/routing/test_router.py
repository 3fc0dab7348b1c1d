"""``Router`` and ``RoutePlan``: retries, backoff, fallbacks, cooldowns and probes, on a fake clock."""

from __future__ import annotations

import random
import textwrap

import pytest

from keystile.config import ConfigError, load_settings
from keystile.config.model import Deployment, RouterSettings, Settings
from keystile.routing.health import LATENCY_STALE
from keystile.routing.router import Router, is_context_window_error


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FixedRandom(random.Random):
    """random() always returns ``value``: jitter and weighted choices become predictable."""

    def __init__(self, value: float = 0.5) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def make_router(groups: dict[str, int], rng_value: float = 0.0, cooldowns: list | None = None, **router) -> tuple[Router, Clock]:
    deployments = []
    for name, count in groups.items():
        for i in range(count):
            deployments.append(Deployment(name, "mock", f"{name}-up{i}", id=f"{name}#{i}"))
    return make_router_from(deployments, rng_value, cooldowns, **router)


def make_router_from(deployments, rng_value=0.0, cooldowns=None, **router) -> tuple[Router, Clock]:
    defaults = dict(retry_backoff=0.25, cooldown_failures=2, cooldown_window=60.0, cooldown_seconds=30.0)
    defaults.update(router)
    settings = Settings(deployments=tuple(deployments), router=RouterSettings(**defaults))
    clock = Clock()
    listener = (lambda d, cooling: cooldowns.append((d, cooling))) if cooldowns is not None else None
    return Router(settings, FixedRandom(rng_value), clock=clock, on_cooldown=listener), clock


def state(router: Router, deployment_id: str):
    return router.table._by_id[deployment_id]


# --- retries and fallbacks --------------------------------------------------------------------


def test_healthy_path_is_one_attempt():
    router, _ = make_router({"a": 2})
    plan = router.plan("a")
    first = plan.next()
    assert first.id == "a#0" and state(router, "a#0").inflight == 1
    plan.succeeded(0.2, tokens=10)
    assert state(router, "a#0").inflight == 0 and state(router, "a#0").latency == 0.2
    assert plan.attempts == 1 and plan.group_name == "a" and not plan.fallback
    plan.release()  # idempotent
    assert state(router, "a#0").inflight == 0


def test_retry_goes_to_the_other_deployment_without_waiting_then_falls_back():
    router, _ = make_router({"a": 2, "b": 1}, num_retries=1, fallbacks=(("a", ("b",)),))
    plan = router.plan("a")
    assert plan.next().id == "a#0"
    assert plan.failed() == 0.0  # a fresh deployment is next
    assert plan.next().id == "a#1"
    assert plan.failed(retry_after=5.0) == 0.0  # retries used up: straight to the fallback
    fallback = plan.next()
    assert fallback.id == "b#0" and plan.group_name == "b" and plan.fallback and plan.attempts == 3
    assert plan.failed() == pytest.approx(0.125)  # b has one deployment: the retry backs off
    assert plan.next().id == "b#0" and plan.attempts == 4
    assert plan.failed() == 0.0
    assert plan.next() is None
    assert all(h.inflight == 0 for h in router.table.all())


def test_each_fallback_group_gets_its_own_retries():
    router, _ = make_router({"a": 1, "b": 1, "c": 1}, num_retries=1, fallbacks=(("a", ("b", "c")),))
    plan = router.plan("a")
    seen = []
    while (deployment := plan.next()) is not None:
        seen.append(deployment.id)
        plan.failed()
    assert seen == ["a#0", "a#0", "b#0", "b#0", "c#0", "c#0"]


def test_fallbacks_of_a_name_a_pattern_group_serves():
    """The README's reference config: ``claude-opus-4-1`` is served by ``claude-*`` and falls back
    to other models; a fallback may itself be a name only a pattern serves."""
    deployments = [
        Deployment("claude-*", "mock", "", id="claude-*#0"),
        Deployment("gpt-4o", "mock", "gpt-4o-up", id="gpt-4o#0"),
    ]
    router, _ = make_router_from(deployments, num_retries=0, fallbacks=(("claude-opus-4-1", ("claude-sonnet-4-5", "gpt-4o")),))
    plan = router.plan("claude-opus-4-1")
    seen = []
    while (deployment := plan.next()) is not None:
        seen.append((deployment.id, deployment.model, plan.group_name))
        plan.failed()
    assert seen == [
        ("claude-*#0", "claude-opus-4-1", "claude-*"),
        ("claude-*#0", "claude-sonnet-4-5", "claude-*"),  # the fallback's own name goes upstream
        ("gpt-4o#0", "gpt-4o-up", "gpt-4o"),
    ]
    assert router.plan("claude-haiku-4-5").next() is not None  # other names the pattern serves have no fallbacks
    assert router.fallbacks_of("claude-haiku-4-5", router.group("claude-haiku-4-5")) == ()


def test_backoff_is_exponential_with_jitter():
    router, _ = make_router({"a": 1}, num_retries=3, cooldown_failures=10)
    for r, expected in ((0.0, [0.125, 0.25, 0.5]), (0.999, [0.37475, 0.7495, 1.499])):
        router.rng.value = r
        plan = router.plan("a")
        delays = []
        for _ in range(3):
            plan.next()
            delays.append(plan.failed())
        assert delays == pytest.approx(expected)


def test_retry_after_is_honoured_up_to_the_cap():
    router, _ = make_router({"a": 1}, num_retries=3, retry_after_cap=10.0, cooldown_failures=10)
    plan = router.plan("a")
    plan.next()
    assert plan.failed(retry_after=2.0) == pytest.approx(2.0)
    plan.next()
    assert plan.failed(retry_after=0.01) == pytest.approx(0.25)  # the backoff is longer
    plan.next()
    assert plan.failed(retry_after=3600.0) == pytest.approx(10.0)


def test_request_max_retries_overrides_deployment_and_router():
    deployments = [Deployment("a", "mock", "x", id="a#0", max_retries=4)]
    router, _ = make_router_from(deployments, num_retries=1, cooldown_failures=100)

    def attempts(plan) -> int:
        while plan.next() is not None:
            plan.failed()
        return plan.attempts

    assert attempts(router.plan("a")) == 5  # the deployment's max_retries wins over the router's
    assert attempts(router.plan("a", max_retries=0)) == 1  # the request's header wins over both
    assert attempts(router.plan("a", max_retries=2)) == 3


def test_unknown_model_plans_nothing():
    router, _ = make_router({"a": 1})
    assert router.plan("nope").next() is None


def test_context_window_fallbacks():
    router, _ = make_router({"small": 1, "large": 1, "other": 1},
                            fallbacks=(("small", ("other",)),), context_window_fallbacks=(("small", ("large",)),))
    plan = router.plan("small")
    plan.next()
    assert plan.context_window_exceeded()
    assert plan.next().id == "large#0" and plan.group_name == "large"
    assert state(router, "small#0").failures == 0 and state(router, "small#0").inflight == 0
    plan.done()
    assert not router.plan("large").context_window_exceeded()


@pytest.mark.parametrize(
    "status,body,expected",
    [
        (400, b'{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 250000 tokens > 200000 maximum"}}', True),
        (400, b'{"error":{"message":"This model\'s maximum context length is 128000 tokens.","code":"context_length_exceeded"}}', True),
        (400, b'{"type":"error","error":{"type":"invalid_request_error","message":"input length and `max_tokens` exceed context limit: 197000 + 8192 > 200000"}}', True),
        (400, b'{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: must be positive"}}', False),
        # Bedrock's ValidationException; Gemini's INVALID_ARGUMENT (AI Studio and Vertex)
        (400, b'{"message":"Input is too long for requested model."}', True),
        (400, b'{"error":{"code":400,"message":"The input token count (1250000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}', True),
        (429, b"prompt is too long", False),
    ],
)
def test_context_window_errors_are_recognised(status, body, expected):
    assert is_context_window_error(status, body) is expected


# --- cooldowns and probes ---------------------------------------------------------------------


def fail_once(router: Router, group: str, deployment_id: str) -> None:
    plan = router.plan(group)
    deployment = plan.next()
    assert deployment.id == deployment_id
    plan.failed()
    plan.release()


def test_failures_within_the_window_cool_a_deployment_down_and_a_probe_brings_it_back():
    changes: list = []
    router, clock = make_router({"a": 2}, cooldowns=changes)
    assert changes == [("a#0", False), ("a#1", False)]
    changes.clear()
    fail_once(router, "a", "a#0")
    assert state(router, "a#0").state(clock.now) == "healthy"
    clock.now += 1
    fail_once(router, "a", "a#0")
    assert state(router, "a#0").state(clock.now) == "cooling_down" and changes == [("a#0", True)]

    for _ in range(5):  # skipped while cooling down, whatever the random number says
        plan = router.plan("a")
        assert plan.next().id == "a#1"
        plan.succeeded(0.1)

    clock.now += 30.0
    probe = router.plan("a")
    assert probe.next().id == "a#0" and state(router, "a#0").probing
    other = router.plan("a")
    assert other.next().id == "a#1"  # only one request probes
    other.succeeded(0.1)
    probe.succeeded(0.3)
    assert state(router, "a#0").state(clock.now) == "healthy" and changes[-1] == ("a#0", False)
    assert router.plan("a").next().id == "a#0"


def test_a_failed_probe_cools_down_again():
    changes: list = []
    router, clock = make_router({"a": 2}, cooldowns=changes)
    fail_once(router, "a", "a#0")
    fail_once(router, "a", "a#0")
    clock.now += 31.0
    fail_once(router, "a", "a#0")  # the probe
    health = state(router, "a#0")
    assert health.state(clock.now) == "cooling_down" and health.cooldown_until == clock.now + 30.0
    assert not health.probing and changes.count(("a#0", True)) == 1


def test_a_probe_that_ends_without_a_verdict_lets_the_next_request_probe():
    router, clock = make_router({"a": 2})
    fail_once(router, "a", "a#0")
    fail_once(router, "a", "a#0")
    clock.now += 31.0
    plan = router.plan("a")
    assert plan.next().id == "a#0"
    plan.release()  # e.g. the client went away
    assert not state(router, "a#0").probing
    assert router.plan("a").next().id == "a#0"


def test_failures_outside_the_window_do_not_cool_down():
    router, clock = make_router({"a": 2})
    fail_once(router, "a", "a#0")
    clock.now += 61.0
    fail_once(router, "a", "a#0")
    assert state(router, "a#0").state(clock.now) == "healthy"


def test_client_errors_do_not_count():
    router, _ = make_router({"a": 2})
    for _ in range(5):
        plan = router.plan("a")
        plan.next()
        plan.done()  # what the handler does on a 400/401/403/404/413
    assert state(router, "a#0").state(0) == "healthy" and state(router, "a#0").failures == 0


def test_a_group_whose_deployments_all_cool_down_is_still_tried():
    router, clock = make_router({"a": 2}, num_retries=0)
    for deployment_id in ("a#0", "a#0", "a#1", "a#1"):
        fail_once(router, "a", deployment_id)
        clock.now += 1
    assert all(h.state(clock.now) == "cooling_down" for h in router.table.all())
    plan = router.plan("a")
    assert plan.next().id == "a#0"  # failed longest ago
    plan.succeeded(0.1)
    # A last resort's success does not end the cooldown early; the probe after it does.
    assert state(router, "a#0").state(clock.now) == "cooling_down"
    clock.now += 30.0
    probe = router.plan("a")
    assert probe.next().id == "a#0"
    probe.succeeded(0.1)
    assert state(router, "a#0").state(clock.now) == "healthy"


def test_an_answer_under_way_when_the_cooldown_began_does_not_end_it():
    router, clock = make_router({"a": 2})
    long_stream = router.plan("a")
    assert long_stream.next().id == "a#0"
    fail_once(router, "a", "a#0")
    fail_once(router, "a", "a#0")
    long_stream.succeeded(0.2)
    assert state(router, "a#0").state(clock.now) == "cooling_down"


def test_health_report():
    router, clock = make_router({"a": 2})
    fail_once(router, "a", "a#0")
    fail_once(router, "a", "a#0")
    plan = router.plan("a")
    plan.next()
    report = {row["id"]: row for row in router.health(wall_now=1_700_000_000.0)}
    assert report["a#0"]["state"] == "cooling_down"
    assert report["a#0"]["cooling_down_until"] == pytest.approx(1_700_000_030.0)
    assert report["a#0"]["failures"] == 2 and report["a#0"]["error_rate"] > 0
    assert report["a#1"] == {**report["a#1"], "state": "healthy", "inflight": 1, "cooling_down_until": None, "model_group": "a"}


def test_least_busy_spreads_concurrent_requests():
    router, _ = make_router({"a": 3}, strategy="least_busy")
    plans = [router.plan("a") for _ in range(6)]
    picked = [p.next().id for p in plans]
    assert sorted(picked) == ["a#0", "a#0", "a#1", "a#1", "a#2", "a#2"]


def test_capacity_counts_requests_per_minute():
    deployments = [Deployment("a", "mock", "x", id="a#0", rpm=2), Deployment("a", "mock", "y", id="a#1", rpm=100)]
    router, _ = make_router_from(deployments, strategy="capacity")
    picked = []
    for _ in range(4):
        plan = router.plan("a")
        picked.append(plan.next().id)
        plan.succeeded(0.1, tokens=5)
    assert picked == ["a#0", "a#0", "a#1", "a#1"]


def test_latency_strategy_measures_a_once_slow_deployment_again():
    """A deployment that was slow once gets no traffic under ``latency``; after its sample
    goes stale it is tried again, and its fresh sample replaces (not blends with) the old."""
    router, clock = make_router({"a": 2}, strategy="latency", rng_value=0.0)

    def serve(latency_of: dict[str, float]) -> str:
        plan = router.plan("a")
        chosen = plan.next().id
        plan.succeeded(latency_of[chosen], tokens=1)
        return chosen

    slow_then_fast = {"a#0": 0.1, "a#1": 2.0}
    assert {serve(slow_then_fast), serve(slow_then_fast)} == {"a#0", "a#1"}  # each measured once
    assert [serve(slow_then_fast) for _ in range(5)] == ["a#0"] * 5  # a#1 starved while its sample is fresh
    clock.now += LATENCY_STALE + 1.0
    router.plan("a")  # no effect until a request completes
    recovered = {"a#0": 0.1, "a#1": 0.1}
    picked = [serve(recovered) for _ in range(2)]
    assert "a#1" in picked  # both samples stale: both unmeasured again, a#1 gets its turn
    assert state(router, "a#1").latency == 0.1  # the 2.0 s sample was forgotten, not averaged in


def test_per_group_strategy_override():
    router, _ = make_router({"a": 2, "b": 2}, strategy="weighted", strategies=(("b", "latency"),))
    assert router.group("a").strategy == "weighted" and router.group("b").strategy == "latency"


# --- configuration ----------------------------------------------------------------------------


def load(tmp_path, text: str) -> Settings:
    path = tmp_path / "keystile.yaml"
    path.write_text(textwrap.dedent(text))
    return load_settings(str(path), env={})


def test_native_config_groups_and_strategies(tmp_path):
    settings = load(
        tmp_path,
        """\
        models:
          - {name: claude, provider: mock, model: a, weight: 3, rpm: 10, max_retries: 1, region: eu}
          - {name: claude, provider: mock, model: b, timeout: 5s}
          - {name: gpt, provider: mock}
        router:
          strategy: least_busy
          strategies: {gpt: capacity}
          fallbacks: {claude: [gpt]}
          cooldown_failures: 2
        """,
    )
    router = Router(settings)
    group = router.group("claude")
    assert [d.id for d in group.deployments] == ["claude#0", "claude#1"]
    assert group.strategy == "least_busy" and router.group("gpt").strategy == "capacity"
    assert group.fallbacks == ("gpt",)
    first = group.deployments[0]
    assert (first.weight, first.rpm, first.max_retries, first.region) == (3.0, 10, 1, "eu")
    assert group.deployments[1].timeout == 5.0


def test_unknown_strategy_is_a_config_problem(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "models:\n  - {name: a, provider: mock}\nrouter:\n  strategies: {a: fastest, b: weighted}\n")
    text = "\n".join(info.value.problems)
    assert "fastest" in text and "unknown model 'b'" in text


def test_litellm_config_groups_by_repeated_model_name(tmp_path):
    settings = load(
        tmp_path,
        """\
        model_list:
          - model_name: claude
            litellm_params: {model: anthropic/claude-a, api_key: k1, weight: 2}
          - model_name: claude
            litellm_params: {model: anthropic/claude-b, api_key: k2, api_base: "https://eu.example.com"}
          - model_name: gpt
            litellm_params: {model: openai/gpt-4o, api_key: k3}
        router_settings:
          routing_strategy: latency-based-routing
          allowed_fails: 4
          cooldown_time: 12
          fallbacks: [{claude: [gpt]}]
        """,
    )
    router = Router(settings)
    assert [d.model for d in router.group("claude").deployments] == ["claude-a", "claude-b"]
    assert router.group("claude").strategy == "latency" and router.group("claude").fallbacks == ("gpt",)
    assert (settings.router.cooldown_failures, settings.router.cooldown_seconds) == (4, 12.0)


def test_litellm_config_takes_keystile_settings_from_its_keystile_section(tmp_path):
    settings = load(
        tmp_path,
        """\
        model_list:
          - model_name: claude
            litellm_params: {model: anthropic/claude-a, api_key: k1}
          - model_name: gpt
            litellm_params: {model: openai/gpt-4o, api_key: k3}
        router_settings:
          routing_strategy: least-busy
          num_retries: 4
          cooldown_time: 12
        keystile:
          key_cache_ttl: 5s
          store_outage_grace: 2m
          log_level: debug
          server: {port: 4100}
          spend: {flush_interval: 2s}
          router:
            strategies: {gpt: capacity}
            stream_idle_timeout: 45s
            cooldown_seconds: 30
          colour: blue
        """,
    )
    assert (settings.key_cache_ttl, settings.store_outage_grace, settings.log_level) == (5.0, 120.0, "debug")
    assert (settings.server.port, settings.spend.flush_interval) == (4100, 2.0)
    router = settings.router
    # router_settings still counts where the keystile section says nothing; the section wins where it does
    assert (router.strategy, router.num_retries, router.cooldown_seconds) == ("least_busy", 4, 30.0)
    assert router.strategies == (("gpt", "capacity"),) and router.stream_idle_timeout == 45.0
    assert Router(settings).group("gpt").strategy == "capacity"
    assert any("keystile.colour" in w and "unknown setting" in w for w in settings.warnings), settings.warnings


# --- a client's own overrides ------------------------------------------------------------------


def test_a_timeout_the_client_shortened_does_not_count_toward_cooldown():
    cooldowns: list = []
    deployments = [Deployment("a", "mock", f"up{i}", id=f"a#{i}", timeout=30.0) for i in range(2)]
    router, _ = make_router_from(deployments, cooldowns=cooldowns, num_retries=5, cooldown_failures=1)
    for _ in range(2):  # the issue: two requests at 1 ms, each retried on both deployments
        plan = router.plan("a", max_retries=5, timeout=0.001)
        while plan.next() is not None:
            plan.failed(timed_out=True)
        assert plan.attempts == 6 and plan.lost_attempts == 6  # num_retries 5 here; each attempt reached the upstream
    assert cooldowns == [("a#0", False), ("a#1", False)]  # only the initial gauges: nobody cooled down
    assert [state(router, f"a#{i}").failures for i in range(2)] == [0, 0]
    assert all(state(router, f"a#{i}").available(0.0) for i in range(2))


def test_a_timeout_at_or_above_the_configured_one_still_counts():
    deployments = [Deployment("a", "mock", "up", id="a#0", timeout=0.5)]
    router, clock = make_router_from(deployments, num_retries=0, cooldown_failures=1)
    plan = router.plan("a", timeout=1.0)  # the client waited longer than the deployment would have
    plan.next()
    plan.failed(timed_out=True)
    assert state(router, "a#0").state(clock.now) == "cooling_down"
    plan = router.plan("a", timeout=0.5)
    router.table.succeeded(state(router, "a#0"), 0.1, clock.now + 100)  # (healthy again)
    plan.next()
    plan.failed(timed_out=True)  # the same timeout as configured: the deployment's fault
    assert state(router, "a#0").failures == 2


def test_the_router_timeout_is_the_configured_one_when_a_deployment_sets_none():
    router, _ = make_router({"a": 1}, num_retries=0, cooldown_failures=1, timeout=60.0)
    plan = router.plan("a", timeout=10.0)
    plan.next()
    plan.failed(timed_out=True)
    assert state(router, "a#0").failures == 0 and plan.lost_attempts == 1


def test_connect_failures_and_error_statuses_are_not_lost_attempts():
    router, _ = make_router({"a": 2}, num_retries=1, cooldown_failures=10)
    plan = router.plan("a", timeout=0.001)
    plan.next()
    plan.failed()  # could not connect, or a 5xx: the deployment's fault, nothing to bill
    plan.next()
    plan.failed(received=True)  # the answer broke after the upstream had the request
    assert plan.lost_attempts == 1 and state(router, "a#0").failures + state(router, "a#1").failures == 2


@pytest.mark.parametrize(
    ("asked", "raise_allowed", "attempts"),
    [
        (None, False, 3),  # the group's configured 2 retries
        (0, False, 1),
        (1, False, 2),
        (5, False, 3),  # a client cannot ask for more than the configuration gives
        (5, True, 5),  # unless the configuration allows it, up to max_retries_cap (4)
        (1, True, 2),
    ],
)
def test_the_retry_header_is_bounded_by_the_configuration(asked, raise_allowed, attempts):
    router, _ = make_router(
        {"a": 2}, num_retries=2, max_retries_cap=4, client_may_raise_retries=raise_allowed, cooldown_failures=100, retry_backoff=0.0
    )
    plan = router.plan("a", max_retries=asked)
    while plan.next() is not None:
        plan.failed()
    assert plan.attempts == attempts


def test_a_deployment_max_retries_bounds_the_header_too():
    deployments = [Deployment("a", "mock", "up", id="a#0", max_retries=1)]
    router, _ = make_router_from(deployments, num_retries=3, cooldown_failures=100)
    plan = router.plan("a", max_retries=3)
    while plan.next() is not None:
        plan.failed()
    assert plan.attempts == 2


def test_client_may_raise_retries_is_read_from_the_config(tmp_path):
    path = tmp_path / "keystile.yaml"
    path.write_text("models:\n  - name: m\n    provider: mock\nrouter:\n  client_may_raise_retries: true\n")
    assert load_settings(str(path)).router.client_may_raise_retries is True
    path.write_text("models:\n  - name: m\n    provider: mock\n")
    assert load_settings(str(path)).router.client_may_raise_retries is False
