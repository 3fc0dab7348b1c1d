"""Issue 15.4: keystile behind a corporate egress proxy, with a corporate CA.

The gateway runs as a real process with ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` set;
the test runs a real HTTP proxy on 127.0.0.1 (CONNECT and absolute-form, recording what it
carried) and a TLS front for the mock upstream whose certificate a throwaway CA signed. The
official SDKs call keystile; the checks read what the proxy carried and what the mock
upstream received.
"""

from __future__ import annotations

import base64
import textwrap
from typing import Iterator

import anthropic
import httpx
import openai
import pytest

from tests.integration.harness import (
    UPSTREAM_ANTHROPIC_KEY,
    UPSTREAM_AZURE_KEY,
    UPSTREAM_OPENAI_KEY,
    GatewayProcess,
    anthropic_body,
)
from tests.upstream.http_proxy import Certificates, HttpProxy, LoopThread, TlsFront, make_certificates

PASSWORD = "proxy-pass-SECRET-7777"
USER = "alice@corp"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")


class Egress:
    """The proxies and the TLS front, on an event loop in a thread."""

    def __init__(self, upstream_port: int, certs: Certificates) -> None:
        self.loop = LoopThread()
        self.proxy = self.loop.run(HttpProxy(credentials=BASIC).start())
        self.strict = self.loop.run(HttpProxy(credentials="Basic only-somebody-else").start())
        self.tls = self.loop.run(TlsFront(upstream_port, certs.server_context()).start())

    def close(self) -> None:
        for server in (self.proxy, self.strict, self.tls):
            self.loop.run(server.close())
        self.loop.stop()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("corp-ca"))


@pytest.fixture(scope="module")
def egress(upstream, certs: Certificates) -> Iterator[Egress]:  # type: ignore[no-untyped-def]
    port = int(upstream.url.rsplit(":", 1)[1])
    egress = Egress(port, certs)
    try:
        yield egress
    finally:
        egress.close()


def _models(tls_host: str, port: int, suffix: str = "") -> str:
    base = f"https://{tls_host}:{port}"
    return textwrap.dedent(
        f"""\
        - name: claude{suffix}
          provider: anthropic
          model: claude-sonnet-4-5-20250929
          api_base: {base}
          api_key: {UPSTREAM_ANTHROPIC_KEY}
        - name: gpt{suffix}
          provider: openai
          model: gpt-4o-2024-08-06
          api_base: {base}/v1
          api_key: {UPSTREAM_OPENAI_KEY}
        - name: azure{suffix}
          provider: azure
          model: my-gpt4o-deployment
          api_base: {base}
          api_version: "2024-10-21"
          api_key: {UPSTREAM_AZURE_KEY}
        """
    )


def _env(**values: str) -> dict[str, str]:
    """The gateway's environment: only the proxy variables given here (the runner's are blanked)."""
    env = {name: "" for name in PROXY_VARIABLES}
    env.update(values)
    return env


@pytest.fixture(scope="module")
def gateway(egress: Egress, certs: Certificates) -> Iterator[GatewayProcess]:
    """HTTPS_PROXY with credentials, NO_PROXY=localhost, the CA from ``upstream.ca_bundle``."""
    config = "models:\n" + textwrap.indent(
        _models("127.0.0.1", egress.tls.port) + _models("localhost", egress.tls.port, "-direct"), "  "
    ) + f"upstream:\n  ca_bundle: {certs.ca}\n"
    env = _env(
        HTTPS_PROXY=f"http://{USER.replace('@', '%40')}:{PASSWORD}@127.0.0.1:{egress.proxy.port}",
        NO_PROXY="localhost",
        SSL_CERT_FILE="",
        REQUESTS_CA_BUNDLE="",
    )
    with GatewayProcess(config, env=env) as gw:
        yield gw


def _connects(proxy: HttpProxy) -> list[str]:
    return [r.target for r in proxy.records if r.method == "CONNECT"]


def test_every_provider_reaches_a_tls_upstream_through_the_connect_tunnel(gateway, egress, upstream, key):
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as claude:
        message = claude.messages.create(**anthropic_body(model="claude"))
        assert message.content[0].type == "text" and message.usage.output_tokens > 0
        with claude.messages.stream(**anthropic_body(model="claude", text="stream please")) as stream:
            assert stream.get_final_message().stop_reason == "end_turn"
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as gpt:
        for model in ("gpt", "azure"):
            completion = gpt.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
            assert completion.choices[0].message.content

    tunnels = _connects(egress.proxy)
    assert tunnels and set(tunnels) == {f"127.0.0.1:{egress.tls.port}"}
    assert all(r.headers.get("proxy-authorization") == BASIC for r in egress.proxy.records)
    received = upstream.requests()
    assert [r["path"] for r in received] == [
        "/v1/messages",
        "/v1/messages",
        "/v1/chat/completions",
        "/openai/deployments/my-gpt4o-deployment/chat/completions",
    ]
    for record in received:
        names = {name for name, _ in record["headers"]}
        assert "proxy-authorization" not in names and PASSWORD not in str(record)


def test_no_proxy_exempts_a_host(gateway, egress, upstream, key):
    before = len(egress.proxy.records)
    accepted = egress.tls.accepted
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as claude:
        assert claude.messages.create(**anthropic_body(model="claude-direct")).usage.output_tokens > 0
    assert len(egress.proxy.records) == before  # nothing through the proxy
    assert egress.tls.accepted == accepted + 1  # straight to the TLS upstream
    assert [r["path"] for r in upstream.requests()] == ["/v1/messages"]


def test_the_proxy_password_is_never_logged(gateway, egress, key):
    httpx.post(f"{gateway.url}/v1/messages", json=anthropic_body(model="gpt"), headers={"x-api-key": key}, timeout=30)
    log = gateway.log()
    assert f"goes through the proxy 127.0.0.1:{egress.proxy.port}" in log
    assert PASSWORD not in log and BASIC.split()[1] not in log and "alice" not in log


@pytest.fixture(scope="module")
def gateway_lower(egress: Egress, certs: Certificates, upstream) -> Iterator[GatewayProcess]:  # type: ignore[no-untyped-def]
    """Lower-case variables: http_proxy (absolute form) for the plain-HTTP mock upstream,
    https_proxy to a proxy that refuses these credentials, no_proxy=localhost for a TLS
    upstream verified with the CA named by REQUESTS_CA_BUNDLE."""
    plain = textwrap.dedent(
        f"""\
        - name: gpt-plain
          provider: openai
          model: gpt-4o-2024-08-06
          api_base: {upstream.url}/v1
          api_key: {UPSTREAM_OPENAI_KEY}
        """
    )
    config = "models:\n" + textwrap.indent(plain + _models("127.0.0.1", egress.tls.port) + _models("localhost", egress.tls.port, "-direct"), "  ")
    env = _env(
        http_proxy=f"http://{USER.replace('@', '%40')}:{PASSWORD}@127.0.0.1:{egress.proxy.port}",
        https_proxy=f"http://{USER.replace('@', '%40')}:{PASSWORD}@127.0.0.1:{egress.strict.port}",
        HTTPS_PROXY="http://127.0.0.1:9",  # the lower-case spelling wins
        no_proxy="localhost",
        SSL_CERT_FILE="",
        REQUESTS_CA_BUNDLE=str(certs.ca),
    )
    with GatewayProcess(config, env=env) as gw:
        yield gw


def test_plain_http_goes_to_the_proxy_in_absolute_form(gateway_lower, egress, upstream, key):
    # `key` was made on the other gateway; this one needs its own.
    own = gateway_lower.create_key()
    with openai.OpenAI(base_url=f"{gateway_lower.url}/v1", api_key=own, max_retries=0) as gpt:
        assert gpt.chat.completions.create(model="gpt-plain", messages=[{"role": "user", "content": "hi"}]).choices
    carried = [r for r in egress.proxy.records if r.method == "POST"]
    assert [r.target for r in carried] == [f"{upstream.url}/v1/chat/completions"]
    assert carried[0].headers["proxy-authorization"] == BASIC
    [record] = upstream.requests()
    assert record["path"] == "/v1/chat/completions" and "proxy-authorization" not in {n for n, _ in record["headers"]}


def test_a_refusing_proxy_is_a_502_and_the_log_says_why(gateway_lower, egress):
    own = gateway_lower.create_key()
    with anthropic.Anthropic(base_url=gateway_lower.url, api_key=own, max_retries=0) as claude:
        with pytest.raises(anthropic.APIStatusError) as caught:
            claude.messages.create(**anthropic_body(model="claude"))
        assert caught.value.status_code == 502
        assert "claude#0" in caught.value.message and PASSWORD not in caught.value.message
        # The exempt host still works, its certificate checked against REQUESTS_CA_BUNDLE's CA.
        assert claude.messages.create(**anthropic_body(model="claude-direct")).usage.output_tokens > 0
    assert egress.strict.refused >= 1
    assert _connects(egress.strict) and all(t == f"127.0.0.1:{egress.tls.port}" for t in _connects(egress.strict))
    log = gateway_lower.log()
    assert f"via the proxy 127.0.0.1:{egress.strict.port}: the proxy answered CONNECT with 407" in log
    assert PASSWORD not in log and BASIC.split()[1] not in log


def test_an_unusable_proxy_url_stops_the_gateway_without_showing_it(tmp_path):
    config = "models:\n  - name: m\n    provider: mock\n"
    gw = GatewayProcess(config, workdir=tmp_path, env=_env(HTTPS_PROXY=f"socks5://{USER}:{PASSWORD}@127.0.0.1:1080"))
    with pytest.raises(RuntimeError) as caught:
        gw.start(timeout=20)
    assert "HTTPS_PROXY names a socks5:// proxy" in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_an_untrusted_upstream_certificate_is_refused(egress, tmp_path):
    """Without the CA, the TLS upstream is not trusted: verification is on through the tunnel."""
    config = "models:\n" + textwrap.indent(_models("localhost", egress.tls.port), "  ")
    with GatewayProcess(config, workdir=tmp_path, env=_env(SSL_CERT_FILE="", REQUESTS_CA_BUNDLE="")) as gw:
        response = httpx.post(
            f"{gw.url}/v1/messages", json=anthropic_body(model="claude"), headers={"x-api-key": gw.create_key()}, timeout=30
        )
        assert response.status_code == 502
        assert "CERTIFICATE_VERIFY_FAILED" in gw.log()
