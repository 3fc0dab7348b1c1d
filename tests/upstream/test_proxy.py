"""Egress through an HTTP proxy and custom CAs: the environment rules (table-driven), and
UpstreamClient through a real CONNECT proxy to a TLS origin whose certificate a throwaway CA
signed. Loop-leak checked on asyncio and uvloop (the `run` fixture of test_client)."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest

from keystile.config.model import UpstreamSettings
from keystile.providers.base import upstream_client
from keystile.upstream.client import UpstreamConnectError
from keystile.upstream.proxy import Proxy, ProxyRules, bypasses, parse_proxy_url
from keystile.upstream.tls import ca_bundles, tls_context
from tests.upstream.http_proxy import Certificates, HttpProxy, make_certificates
from tests.upstream.test_client import Server, echo_handler, open_client, run  # noqa: F401

PASSWORD = "s3cret-proxy-pass"
BASIC = "Basic " + base64.b64encode(f"alice@corp:{PASSWORD}".encode()).decode()


# -- the environment -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "exempt"),
    [
        ("api.anthropic.com", 443, "", False),
        ("api.anthropic.com", 443, "*", True),
        ("api.anthropic.com", 443, "anthropic.com", True),  # a domain covers its subdomains
        ("api.anthropic.com", 443, ".anthropic.com", True),
        ("api.anthropic.com", 443, "*.anthropic.com", True),
        ("anthropic.com", 443, ".anthropic.com", True),
        ("notanthropic.com", 443, "anthropic.com", False),  # a suffix, not a label boundary
        ("API.Anthropic.COM", 443, "api.anthropic.com", True),
        ("api.anthropic.com.", 443, "api.anthropic.com", True),
        ("api.openai.com", 443, "localhost, 127.0.0.1 ,anthropic.com", False),
        ("localhost", 8080, "localhost", True),
        ("localhost", 8080, "localhost:8080", True),
        ("localhost", 8081, "localhost:8080", False),
        ("127.0.0.1", 4000, "", False),  # loopback is not exempt unless listed, as in curl
        ("127.0.0.1", 4000, "127.0.0.1", True),
        ("10.1.2.3", 443, "10.0.0.0/8", True),
        ("11.1.2.3", 443, "10.0.0.0/8", False),
        ("::1", 443, "::1", True),
        ("::1", 443, "[::1]:443", True),
        ("fd00::5", 443, "fd00::/8", True),
        ("10.1.2.3", 443, "corp.example", False),
    ],
)
def test_no_proxy(host: str, port: int, no_proxy: str, exempt: bool) -> None:
    entries = tuple(e.strip().lower() for e in no_proxy.split(",") if e.strip())
    assert bypasses(host, port, entries) is exempt


def test_environment_variables_lower_case_first() -> None:
    rules = ProxyRules.from_environment(
        {
            "HTTPS_PROXY": "http://upper:3128",
            "https_proxy": "http://lower:3128",
            "HTTP_PROXY": "plain-proxy:8080",  # no scheme: http
            "NO_PROXY": "Internal.Corp, 10.0.0.0/8",
        }
    )
    assert rules.https == Proxy("lower", 3128)
    assert rules.http == Proxy("plain-proxy", 8080)
    assert rules.no_proxy == ("internal.corp", "10.0.0.0/8")
    assert rules.for_origin("https", "api.anthropic.com", 443) == Proxy("lower", 3128)
    assert rules.for_origin("https", "llm.internal.corp", 443) is None
    assert rules.for_origin("http", "10.9.9.9", 8000) is None
    assert rules.for_origin("http", "ollama.lan", 11434) == Proxy("plain-proxy", 8080)
    assert ProxyRules.from_environment({}).for_origin("https", "api.anthropic.com", 443) is None
    assert ProxyRules.from_environment({"https_proxy": "  "}).https is None
    assert ProxyRules.from_environment({"https_proxy": "http://p"}).https == Proxy("p", 80)


def test_proxy_credentials_become_basic_and_are_never_shown() -> None:
    proxy = parse_proxy_url(f"http://alice%40corp:{PASSWORD}@proxy.corp:3128", "HTTPS_PROXY")
    assert proxy.authorization == BASIC.encode()  # user and password percent-decoded first
    assert proxy.header_lines() == b"proxy-authorization: " + BASIC.encode() + b"\r\n"
    rules = ProxyRules(https=proxy, no_proxy=("localhost",))
    for text in (repr(proxy), proxy.label, repr(rules), rules.describe(), str(rules)):
        assert PASSWORD not in text and "alice" not in text, text
    assert proxy.label == "proxy.corp:3128"
    assert rules.describe() == "https:// via proxy.corp:3128; except localhost"


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        (f"https://u:{PASSWORD}@proxy:443", "https:// proxy"),
        (f"socks5://u:{PASSWORD}@proxy:1080", "socks5:// proxy"),
        (f"http://u:{PASSWORD}@proxy:3128/path", "path or query"),
        (f"http://u:{PASSWORD}@:3128", "no proxy host"),
        (f"http://u:{PASSWORD}@proxy:99999", "not a valid proxy URL"),
    ],
)
def test_unusable_proxy_urls_are_refused_without_echoing_them(value: str, complaint: str) -> None:
    with pytest.raises(ValueError) as caught:
        ProxyRules.from_environment({"HTTPS_PROXY": value})
    assert complaint in str(caught.value) and "HTTPS_PROXY" in str(caught.value)
    assert PASSWORD not in str(caught.value)


# -- CA bundles ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("ca"))


def test_ca_bundles_from_setting_and_environment(certs: Certificates, tmp_path: Path) -> None:
    env = {"SSL_CERT_FILE": str(certs.ca), "REQUESTS_CA_BUNDLE": str(certs.ca)}
    assert ca_bundles(None, env) == [("SSL_CERT_FILE", str(certs.ca))]
    assert ca_bundles("/etc/corp.pem", {"REQUESTS_CA_BUNDLE": "/x.pem"}) == [
        ("upstream.ca_bundle", "/etc/corp.pem"),
        ("REQUESTS_CA_BUNDLE", "/x.pem"),
    ]
    # Added to the system's CAs, not instead of them.
    system = len(ssl.create_default_context().get_ca_certs())
    context = tls_context(ca_bundles(str(certs.ca), {}))
    assert len(context.get_ca_certs()) == system + 1
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValueError, match="REQUESTS_CA_BUNDLE: cannot load the CA bundle"):
        tls_context(ca_bundles(None, {"REQUESTS_CA_BUNDLE": str(missing)}))
    not_pem = tmp_path / "junk.pem"
    not_pem.write_text("not a certificate\n")
    with pytest.raises(ValueError, match="upstream.ca_bundle: cannot load the CA bundle"):
        tls_context(ca_bundles(str(not_pem), {}))


# -- through a real proxy --------------------------------------------------------------------


def client_for(env: dict[str, str], ca: Path | None = None):  # type: ignore[no-untyped-def]
    """The gateway's client, as `upstream_client` builds it from settings read in `env`."""
    bundles = tuple(ca_bundles(str(ca) if ca else None, env))
    return upstream_client(UpstreamSettings(ca_bundles=bundles, proxies=ProxyRules.from_environment(env)))


def test_https_origin_through_a_connect_tunnel(run, certs: Certificates) -> None:
    """CONNECT with the proxy's credentials, TLS to the origin inside it (verified with the
    configured CA against the origin's name), and the tunnelled connection reused."""

    async def test() -> None:
        async with HttpProxy(credentials=BASIC) as proxy, Server(echo_handler(), ssl_context=certs.server_context()) as origin:
            env = {"HTTPS_PROXY": f"http://alice%40corp:{PASSWORD}@127.0.0.1:{proxy.port}"}
            client = client_for(env, certs.ca)
            try:
                for path in ("/one", "/two"):
                    resp = await client.request("GET", origin.url(path), [])
                    assert (resp.status, await resp.read()) == (200, path.encode())
            finally:
                await client.aclose()
            assert [(r.method, r.target) for r in proxy.records] == [("CONNECT", f"127.0.0.1:{origin.port}")]
            assert proxy.records[0].headers["proxy-authorization"] == BASIC
            assert [r.target for r in origin.requests] == [b"/one", b"/two"]
            assert all(r.header(b"proxy-authorization") is None for r in origin.requests)
            assert origin.accepted == 1

    run(test)


def test_no_proxy_exempts_a_host_and_plain_http_goes_in_absolute_form(run) -> None:
    async def test() -> None:
        async with HttpProxy(credentials=BASIC) as proxy, Server(echo_handler()) as origin:
            env = {"http_proxy": f"http://alice%40corp:{PASSWORD}@127.0.0.1:{proxy.port}", "no_proxy": "localhost"}
            client = client_for(env)
            try:
                resp = await client.request("POST", origin.url("/v1/chat/completions?x=1"), [], b'{"a":1}')
                assert await resp.read() == b'{"a":1}'
                resp = await client.request("GET", f"http://localhost:{origin.port}/direct", [])
                assert await resp.read() == b"/direct"
            finally:
                await client.aclose()
            assert [(r.method, r.target) for r in proxy.records] == [
                ("POST", f"http://127.0.0.1:{origin.port}/v1/chat/completions?x=1")
            ]
            assert proxy.records[0].headers["proxy-authorization"] == BASIC
            assert [r.target for r in origin.requests] == [b"/v1/chat/completions?x=1", b"/direct"]
            assert all(r.header(b"proxy-authorization") is None for r in origin.requests)

    run(test)


def test_proxy_refusals_and_untrusted_origins_are_connect_errors(run, certs: Certificates) -> None:
    async def test() -> None:
        async with HttpProxy(credentials=BASIC) as proxy, Server(echo_handler(), ssl_context=certs.server_context()) as origin:
            wrong = {"HTTPS_PROXY": f"http://alice:{PASSWORD}-wrong@127.0.0.1:{proxy.port}"}
            client = client_for(wrong, certs.ca)
            try:
                with pytest.raises(UpstreamConnectError) as caught:
                    await client.request("GET", origin.url("/"), [])
            finally:
                await client.aclose()
            message = str(caught.value)
            assert "407" in message and f"127.0.0.1:{proxy.port}" in message and PASSWORD not in message
            assert proxy.refused == 1 and origin.accepted == 0

            # The right proxy, but no CA for the origin: TLS verification fails through the tunnel too.
            right = {"HTTPS_PROXY": f"http://alice%40corp:{PASSWORD}@127.0.0.1:{proxy.port}"}
            client = client_for(right)
            try:
                with pytest.raises(UpstreamConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await client.request("GET", origin.url("/"), [])
            finally:
                await client.aclose()

        # A proxy that is not there.
        async with open_client(proxies=ProxyRules(https=Proxy("127.0.0.1", 9))) as client:
            with pytest.raises(UpstreamConnectError, match="via the proxy 127.0.0.1:9"):
                await client.request("GET", "https://example.invalid/", [])

    run(test)
