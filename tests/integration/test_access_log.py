"""Issue 13.6: logs say what happened — one JSON line per request, each failed attempt with its
cause, and a final 5xx that names every attempt's failure."""

from __future__ import annotations

import json
import socket
import textwrap
import time
from typing import Iterator

import httpx
import pytest

from tests.integration.harness import MASTER_KEY, GatewayProcess, anthropic_body, free_port, standard_config


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket closes


@pytest.fixture(scope="module")
def gateway(upstream) -> Iterator[GatewayProcess]:  # type: ignore[no-untyped-def]
    dead = f"http://127.0.0.1:{_closed_port()}"
    broken = textwrap.dedent(
        f"""\
        - name: broken
          provider: anthropic
          model: claude-sonnet-4-5
          api_base: {dead}
          api_key: sk-upstream-anthropic-SECRET-1111
        - name: broken
          provider: openai
          model: gpt-4o
          api_base: {dead}/v1
          api_key: sk-upstream-openai-SECRET-2222
        """
    )
    extra = "router:\n  num_retries: 2\n  retry_backoff: 0.3\n"
    with GatewayProcess(standard_config(upstream.url, extra_models=broken, extra=extra)) as gw:
        yield gw


def _access_lines(gateway: GatewayProcess, predicate, timeout: float = 5.0) -> list[dict]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        lines = []
        for line in gateway.log().splitlines():
            if line.startswith("{") and '"route"' in line:
                lines.append(json.loads(line))
        found = [line for line in lines if predicate(line)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_served_request_gets_one_line_with_who_what_and_cost(gateway):
    key = gateway.create_key(key_alias="alice-laptop")
    response = httpx.post(
        f"{gateway.url}/v1/messages", json=anthropic_body(), headers={"x-api-key": key, "anthropic-version": "2023-06-01"}
    )
    assert response.status_code == 200
    request_id = response.headers["x-keystile-request-id"]
    [line] = _access_lines(gateway, lambda line: line["request_id"] == request_id)
    assert line["key_alias"] == "alice-laptop"
    assert line["route"] == "/v1/messages"
    assert line["model"] == "claude-test" and line["deployment"] == "claude-test#0"
    assert line["status"] == 200 and line["attempts"] == 1
    assert line["input_tokens"] > 0 and line["output_tokens"] > 0 and line["cost"] > 0
    assert key not in gateway.log()


def test_a_wrong_key_is_logged_without_the_key(gateway):
    wrong = "sk-ks-wrong-key-0123456789abcdef"
    response = httpx.post(
        f"{gateway.url}/v1/messages", json=anthropic_body(), headers={"x-api-key": wrong, "anthropic-version": "2023-06-01"}
    )
    assert response.status_code == 401
    lines = _access_lines(gateway, lambda line: line["status"] == 401)
    assert lines and lines[-1]["key_alias"] is None
    assert wrong not in gateway.log()


def test_every_failed_attempt_is_logged_and_the_5xx_names_them_all(gateway):
    key = gateway.create_key()
    started = time.monotonic()
    response = httpx.post(
        f"{gateway.url}/v1/messages",
        json=anthropic_body(model="broken"),
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        timeout=30,
    )
    took = time.monotonic() - started
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert "broken#0" in message and "broken#1" in message and "attempts failed" in message
    attempts = int(response.headers["x-keystile-attempts"])
    assert attempts == 3  # both deployments, then one of them again after a back-off
    request_id = response.headers["x-keystile-request-id"]
    deadline = time.monotonic() + 5
    while gateway.log().count(f"request {request_id}: attempt") < attempts and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gateway.log().count(f"request {request_id}: attempt") == attempts
    [line] = _access_lines(gateway, lambda line: line["request_id"] == request_id)
    assert line["status"] == 502 and "attempts failed" in line["error"]
    # The back-off before the third attempt (0.3 s × 0.5–1.5) is waiting, not keystile's own work.
    overhead = float(response.headers["x-keystile-overhead-ms"])
    assert took > 0.15
    assert overhead < took * 1000 - 140


def test_the_access_log_can_be_turned_off(upstream):
    config = standard_config(upstream.url, extra="server:\n  access_log: false\n")
    with GatewayProcess(config, port=free_port()) as gw:
        response = httpx.post(
            f"{gw.url}/v1/messages",
            json=anthropic_body(),
            headers={"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"},
        )
        assert response.status_code == 200
        request_id = response.headers["x-keystile-request-id"]
        time.sleep(0.6)  # two flush intervals: a line, if one were written, would be there by now
        assert request_id not in gw.log()


def test_a_key_put_in_a_model_name_is_masked_in_the_access_log(gateway):
    key = gateway.create_key()
    secret = "sk-ant-api03-pasted-by-mistake-0123456789abcdef"
    response = httpx.post(
        f"{gateway.url}/v1/messages",
        json=anthropic_body(model=secret),
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 404
    lines = _access_lines(gateway, lambda line: line["request_id"] == response.headers["x-keystile-request-id"])
    assert lines and secret not in json.dumps(lines)
    assert secret not in gateway.log()
