"""Agent CLI tests run against the same real mock upstream as the integration tests, through one
gateway for the whole folder (``agents_gateway``) that has a deployment of every upstream kind."""

from __future__ import annotations

import textwrap
from typing import Iterator

import pytest

from tests.integration.conftest import _clean_upstream, upstream  # noqa: F401
from tests.integration.harness import UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY, GatewayProcess


def agents_config(upstream_url: str) -> str:
    """Agents offer many tools with every turn; ``x-mock-tools: none`` makes the mock answer in text
    (``claude-tools``, ``tools-chat`` and ``tools-responses`` let it call the first tool)."""
    return textwrap.dedent(
        f"""\
        models:
          - name: claude-sonnet              # an Anthropic-type deployment
            provider: anthropic
            model: claude-sonnet-4-5-20250929
            api_base: {upstream_url}
            api_key: {UPSTREAM_ANTHROPIC_KEY}
            headers: {{x-mock-tools: none}}
          - name: claude-tools               # the same, but the mock calls the first tool offered
            provider: anthropic
            model: claude-sonnet-4-5-20250929
            api_base: {upstream_url}
            api_key: {UPSTREAM_ANTHROPIC_KEY}
          - name: gpt-chat                   # an OpenAI-type deployment with Chat Completions only
            provider: openai
            model: gpt-4.1
            api_base: {upstream_url}/v1
            api_key: {UPSTREAM_OPENAI_KEY}
            headers: {{x-mock-tools: none}}
          - name: tools-chat                 # the same, but the mock calls the first tool offered
            provider: openai                 # (no "gpt" in the name: opencode offers GPT models other tools)
            model: gpt-4.1
            api_base: {upstream_url}/v1
            api_key: {UPSTREAM_OPENAI_KEY}
          - name: gpt-responses              # an OpenAI-type deployment with the Responses API
            provider: openai
            model: gpt-5
            api_base: {upstream_url}/v1
            api_key: {UPSTREAM_OPENAI_KEY}
            wire_api: responses
            headers: {{x-mock-tools: none}}
          - name: tools-responses            # the same with the mock calling the first tool
            provider: openai
            model: gpt-5
            api_base: {upstream_url}/v1
            api_key: {UPSTREAM_OPENAI_KEY}
            wire_api: responses
          - name: gemini-3.5-flash-lite      # the model of Gemini CLI's routing call, on Chat
            provider: openai
            model: gpt-4.1-mini
            api_base: {upstream_url}/v1
            api_key: {UPSTREAM_OPENAI_KEY}
            headers: {{x-mock-tools: none}}
          - name: "gemini-*"                 # every other name Gemini CLI asks for, on Anthropic
            provider: anthropic
            model: claude-sonnet-4-5-20250929
            api_base: {upstream_url}
            api_key: {UPSTREAM_ANTHROPIC_KEY}
            headers: {{x-mock-tools: none}}
          - name: "claude-*"                 # Claude Code's default model, whatever its version asks for
            provider: anthropic
            api_base: {upstream_url}
            api_key: {UPSTREAM_ANTHROPIC_KEY}
            headers: {{x-mock-tools: none}}
        """
    )


@pytest.fixture(scope="session")
def agents_gateway(upstream) -> Iterator[GatewayProcess]:  # noqa: F811  # type: ignore[no-untyped-def]
    with GatewayProcess(agents_config(upstream.url)) as gw:
        yield gw


@pytest.fixture()
def agent_key(agents_gateway: GatewayProcess) -> str:
    return agents_gateway.create_key()


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """How long the real CLIs took: wall time depends on the machine's load, CPU time much less."""
    from tests.agents.runners import RUNS

    if not RUNS:
        return
    lines = []
    for name in sorted({r[0] for r in RUNS}):
        runs = [r for r in RUNS if r[0] == name]
        lines.append(f"{name}: {len(runs)} runs, {sum(r[1] for r in runs):.1f} s wall, {sum(r[2] for r in runs):.1f} s CPU")
    total_wall, total_cpu = sum(r[1] for r in RUNS), sum(r[2] for r in RUNS)
    terminalreporter.write_sep("-", "agent CLI runs")
    for line in lines:
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"all: {len(RUNS)} runs, {total_wall:.1f} s wall, {total_cpu:.1f} s CPU")
