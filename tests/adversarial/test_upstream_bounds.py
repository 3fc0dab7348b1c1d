"""Issue 11.10: upstream answers are bounded and honest.

An upstream (or whatever sits in its place: a proxy's login page, a load balancer) may send a
200 that is not JSON, an error page, a decompression bomb, an enormous header or body.
keystile answers each with an error in the client's own format, charges what the upstream
said it used, keeps its memory bounded, and forwards nothing of the client's query string
but ``beta=true``. Real gateway, real mock upstream (its fault rules), and a small hostile
HTTP server for what the mock cannot send (gzip, 70 MB bodies).
"""

from __future__ import annotations

import asyncio
import textwrap
import zlib
from pathlib import Path
from typing import Iterator

import anthropic
import httpx
import openai
import pytest

from tests.integration.harness import GatewayProcess, anthropic_body, openai_body, standard_config
from tests.services import create_database, drop_database
from tests.upstream.http_proxy import LoopThread

MiB = 1 << 20
ANTHROPIC = {"anthropic-version": "2023-06-01"}
SIGN_IN = "<!DOCTYPE html><html><head><title>Corporate proxy: sign in</title></head><body><form>…</form></body></html>"
NGINX_503 = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body><center>nginx</center></body></html>"
# A complete answer whose only flaw is a lone surrogate in its text; the upstream reports 1,000/1,000 tokens.
SURROGATE_MESSAGE = (
    '{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",'
    '"content":[{"type":"text","text":"broken \\ud800 text"}],"stop_reason":"end_turn","stop_sequence":null,'
    '"usage":{"input_tokens":1000,"output_tokens":1000}}'
)
SURROGATE_COMPLETION = (
    '{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06",'
    '"choices":[{"index":0,"message":{"role":"assistant","content":"broken \\ud800 text"},"finish_reason":"stop"}],'
    '"usage":{"prompt_tokens":1000,"completion_tokens":1000,"total_tokens":2000}}'
)


# -- a hostile upstream for what the mock cannot send -------------------------------------------


def _gzip_of_zeros(size: int) -> bytes:
    gz = zlib.compressobj(wbits=31)
    block = bytes(MiB)
    return b"".join([gz.compress(block) for _ in range(size // MiB)] + [gz.flush()])


class Hostile:
    """Answers ``/bomb/…`` with 200 KB of gzip that inflates to 200 MB, ``/big/…`` with 70 MB of JSON."""

    def __init__(self) -> None:
        self.bomb = _gzip_of_zeros(200 * MiB)
        self.big = b'{"id":"chatcmpl-big","choices":[],"padding":"' + b"x" * (70 * MiB) + b'"}'
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *lines = head.decode("latin-1").split("\r\n")
                length = next((int(h.split(":", 1)[1]) for h in lines if h.lower().startswith("content-length:")), 0)
                await reader.readexactly(length)
                if line.split(" ")[1].startswith("/bomb/"):
                    extra, body = b"content-type: application/json\r\ncontent-encoding: gzip\r\n", self.bomb
                else:
                    extra, body = b"content-type: application/json\r\n", self.big
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n" % (len(body), extra))
                writer.write(body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture(scope="module")
def hostile() -> Iterator[Hostile]:
    thread = LoopThread()
    server = Hostile()
    thread.run(server.start())
    try:
        yield server
    finally:
        thread.run(server.stop())
        thread.stop()


def _config(upstream_url: str, hostile: Hostile) -> str:
    extra_models = textwrap.dedent(
        f"""\
        - name: claude-bomb
          provider: anthropic
          model: claude-sonnet-4-5-20250929
          api_base: http://127.0.0.1:{hostile.port}/bomb
          api_key: sk-upstream-anthropic-SECRET-1111
        - name: gpt-big
          provider: openai
          model: gpt-4o-2024-08-06
          api_base: http://127.0.0.1:{hostile.port}/big/v1
          api_key: sk-upstream-openai-SECRET-2222
        """
    )
    # No retries and no cooldowns: each fault below is answered once, and never takes a deployment out.
    return standard_config(upstream_url, extra_models=extra_models, extra="router:\n  num_retries: 0\n  cooldown_failures: 1000\n")


@pytest.fixture(scope="module")
def gateway(upstream, hostile) -> Iterator[GatewayProcess]:  # type: ignore[no-untyped-def]
    with GatewayProcess(_config(upstream.url, hostile)) as gw:
        yield gw


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def charging_gateway(request, upstream, hostile) -> Iterator[GatewayProcess]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        with GatewayProcess(_config(upstream.url, hostile)) as gw:
            yield gw
        return
    services = request.getfixturevalue("services")
    database = create_database(services.postgres, "ks_bounds")
    try:
        with GatewayProcess(_config(upstream.url, hostile), env={"KEYSTILE_DATABASE_URL": database}) as gw:
            yield gw
    finally:
        drop_database(services.postgres, database)


def _fault(upstream, path: str, status: int, body: str, headers: dict | None = None) -> None:  # type: ignore[no-untyped-def]
    upstream.set_faults(
        [{"match": {"path": path}, "times": 1, "action": {"type": "status", "status": status, "body": body, "headers": headers or {}}}]
    )


def _row(gateway: GatewayProcess, request_id: str) -> dict:
    rows = gateway.admin("GET", "/spend/logs", params={"request_id": request_id}).json()
    assert len(rows) == 1, rows
    return rows[0]


def _messages(gateway: GatewayProcess, key: str, path: str = "/v1/messages", **extra) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.post(f"{gateway.url}{path}", json=anthropic_body(**extra), headers={"x-api-key": key, **ANTHROPIC}, timeout=60)


def _chat(gateway: GatewayProcess, key: str, **extra) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=openai_body(**extra), headers={"authorization": f"Bearer {key}"}, timeout=60)


# -- a 200 that is not JSON -------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_200_html_page_is_a_502_in_the_clients_format_and_charged_nothing(gateway, key, upstream, stream):
    _fault(upstream, "/v1/messages", 200, SIGN_IN, {"content-type": "text/html; charset=utf-8"})
    response = _messages(gateway, key, stream=stream)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    if not stream:
        assert "HTML page" in error["error"]["message"] and "Corporate proxy: sign in" in error["error"]["message"]
    row = _row(gateway, response.headers["x-keystile-request-id"])
    assert (row["status"], row["spend"], row["prompt_tokens"], row["completion_tokens"]) == (502, 0, 0, 0)


def test_a_200_html_page_reaches_an_openai_client_as_its_error(gateway, gpt, upstream):
    _fault(upstream, "/v1/messages", 200, SIGN_IN, {"content-type": "text/html"})
    with pytest.raises(openai.APIStatusError) as caught:
        gpt.chat.completions.create(model="claude-test", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_error"  # type: ignore[index]
    assert "HTML page instead of JSON: Corporate proxy: sign in" in caught.value.message


@pytest.mark.parametrize(
    ("model", "path", "body", "cost"),
    [
        # Public prices per million tokens: Claude Sonnet 4.5 $3 in / $15 out; GPT-4o $2.50 in / $10 out.
        ("claude-test", "/v1/messages", SURROGATE_MESSAGE, 1000 * 3e-6 + 1000 * 15e-6),
        ("gpt-test", "/v1/chat/completions", SURROGATE_COMPLETION, 1000 * 2.5e-6 + 1000 * 10e-6),
    ],
    ids=["anthropic", "openai"],
)
def test_a_200_with_a_lone_surrogate_is_a_502_charged_the_usage_it_reported(charging_gateway, upstream, model, path, body, cost):
    gateway = charging_gateway
    key = gateway.create_key()
    _fault(upstream, path, 200, body, {"content-type": "application/json"})
    response = _messages(gateway, key, model=model) if path == "/v1/messages" else _chat(gateway, key, model=model)
    assert response.status_code == 502
    assert "not valid JSON" in response.text
    row = _row(gateway, response.headers["x-keystile-request-id"])
    assert (row["status"], row["prompt_tokens"], row["completion_tokens"]) == (502, 1000, 1000)
    assert row["spend"] == pytest.approx(cost)
    info = gateway.admin("GET", "/key/info", params={"key": key}).json()
    spent = info.get("info", info).get("spend")
    assert spent == pytest.approx(cost)
    # Normal traffic is served and charged as usual afterwards.
    assert _messages(gateway, key).status_code == 200


# -- error pages ------------------------------------------------------------------------------


def test_an_html_error_page_keeps_its_status_and_says_what_it_was(gateway, claude, upstream):
    _fault(upstream, "/v1/messages", 503, NGINX_503, {"content-type": "text/html"})
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude.messages.create(**anthropic_body())
    assert caught.value.status_code == 503
    assert caught.value.body == {  # type: ignore[comparison-overlap]
        "type": "error",
        "error": {
            "type": "api_error",
            "message": "The upstream answered HTTP 503 with an HTML page instead of a JSON error: 503 Service Temporarily Unavailable.",
        },
    }


def test_a_text_error_page_reaches_an_openai_client_in_its_format(gateway, gpt, upstream):
    _fault(upstream, "/v1/chat/completions", 403, "Request blocked by the web application firewall.\n", {"content-type": "text/plain"})
    with pytest.raises(openai.PermissionDeniedError) as caught:
        gpt.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body == {  # type: ignore[comparison-overlap]
        "message": "The upstream answered HTTP 403 with a text page instead of a JSON error: Request blocked by the web application firewall.",
        "type": "permission_error",
        "param": None,
        "code": "permission_denied",
    }


# -- size caps ---------------------------------------------------------------------------------


def _peak_rss(gateway: GatewayProcess) -> int:
    assert gateway.proc is not None
    for line in Path(f"/proc/{gateway.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_a_gzip_bomb_is_a_502_and_the_gateways_memory_stays_bounded(gateway, key):
    """200 KB of gzip inflating to 200 MB took the gateway to 485 MB; now it stops at the
    64 MiB default of upstream.max_body_bytes, one 256 KiB step past it at most."""
    before = _peak_rss(gateway)
    response = _messages(gateway, key, model="claude-bomb")
    assert response.status_code == 502
    assert response.json()["error"]["message"] == (
        "The upstream (claude-bomb#0) sent an answer larger than keystile accepts (upstream.max_body_bytes: 67108864 bytes)."
    )
    assert _peak_rss(gateway) - before < 128 * MiB
    assert _messages(gateway, key).status_code == 200


def test_an_answer_over_the_body_cap_is_a_502(gateway, gpt):
    with pytest.raises(openai.APIStatusError) as caught:
        gpt.chat.completions.create(model="gpt-big", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502
    assert "upstream.max_body_bytes: 67108864" in caught.value.message


def test_a_200_KB_upstream_header_never_reaches_the_client(gateway, key, upstream):
    _fault(upstream, "/v1/messages", 200, SURROGATE_MESSAGE, {"x-request-id": "a" * 200_000, "content-type": "application/json"})
    response = _messages(gateway, key)
    assert response.status_code == 502
    assert sum(len(k) + len(v) for k, v in response.headers.items()) < 4096
    assert "upstream.max_header_bytes: 65536" in response.json()["error"]["message"]


# -- the query string -------------------------------------------------------------------------


def test_the_query_string_reaches_the_upstream_only_through_the_allow_list(gateway, key, upstream):
    secret = "sk-ks-client-query-SECRET-9999"
    assert _messages(gateway, key, path=f"/v1/messages?beta=true&key={secret}&x=1").status_code == 200
    assert httpx.post(
        f"{gateway.url}/v1/chat/completions?key={secret}&api-version=1",
        json=openai_body(),
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    ).status_code == 200
    records = upstream.requests()
    assert [(r["path"], r["query"]) for r in records] == [("/v1/messages", "beta=true"), ("/v1/chat/completions", "")]
    assert all(secret not in str(r) for r in records)
