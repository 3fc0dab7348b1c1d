"""Egress through an HTTP proxy: which upstreams go through one (the standard environment
variables), and opening a CONNECT tunnel.

    HTTPS_PROXY / https_proxy   proxy for https:// upstreams: a CONNECT tunnel, TLS inside it
    HTTP_PROXY  / http_proxy    proxy for http:// upstreams: requests in absolute form
    NO_PROXY    / no_proxy      hosts reached directly (see `bypasses`)

The lower-case variable wins over the upper-case one, as in curl and Python's urllib. A
proxy URL is ``http://[user:password@]host[:port]`` (no scheme means http, no port 80, as in
Python's HTTP clients); user and password may be percent-encoded. Credentials in it are sent as ``Proxy-Authorization: Basic`` and nowhere else: `Proxy`
never shows them (its repr and `label` are host:port), and no error message carries them.

The choice is made once per connection pool (one per upstream origin), not per request.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from keystile.upstream.errors import UpstreamConnectError

__all__ = ["Proxy", "ProxyRules", "parse_proxy_url", "bypasses", "open_tunnel"]

# A proxy's answer to CONNECT larger than this is not a proxy speaking HTTP.
MAX_CONNECT_RESPONSE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Proxy:
    """An HTTP proxy; `authorization` is the ``Proxy-Authorization`` value, if it needs one."""

    host: str
    port: int
    authorization: bytes | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """host:port, for log lines and error messages (never the credentials)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def header_lines(self) -> bytes:
        """The ``proxy-authorization`` header line (CRLF-terminated), or nothing."""
        return b"proxy-authorization: " + self.authorization + b"\r\n" if self.authorization else b""


def parse_proxy_url(value: str, variable: str) -> Proxy:
    """A proxy from an environment value such as ``http://user:pass@proxy.corp:3128``.

    Raises ValueError naming `variable` (never the value: it may hold a password) for what
    keystile cannot use: another scheme (https://, socks5://), no host, a path.
    """
    text = value.strip()
    if "://" not in text:
        text = "http://" + text  # "proxy.corp:3128", as curl and requests read it
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"{variable} is not a valid proxy URL (expected http://[user:password@]host:port)") from None
    scheme = parts.scheme.lower()
    if scheme != "http":
        raise ValueError(
            f"{variable} names a {scheme}:// proxy; keystile reaches proxies over plain HTTP only "
            "(http://host:port — TLS to the upstream still runs end to end inside the CONNECT tunnel)"
        )
    if not parts.hostname:
        raise ValueError(f"{variable} has no proxy host (expected http://[user:password@]host:port)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{variable} has a path or query; a proxy URL is http://[user:password@]host:port")
    authorization = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = b"Basic " + base64.b64encode(credentials)
    return Proxy(parts.hostname, port or 80, authorization)


def bypasses(host: str, port: int, no_proxy: tuple[str, ...]) -> bool:
    """Does a ``NO_PROXY`` list exempt host:port?

    Entries, comma-separated, case-insensitive: ``*`` (every host); a domain, with or without
    a leading ``.`` or ``*.``, matching itself and its subdomains (``corp.example`` matches
    ``api.corp.example``); an IP address or CIDR range (``10.0.0.0/8``, ``::1``) matching
    addresses given as IPs; any of those with ``:port`` to exempt that port only. Loopback
    is not exempt unless listed (as in curl): list ``localhost,127.0.0.1`` as usual.
    """
    host = host.lower().strip("[]").rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in no_proxy:
        if entry == "*":
            return True
        name, entry_port = _split_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
            continue
        domain = name.removeprefix("*.").lstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    """("host", port) from "host:port", "[v6]:port", "v6" or "host"."""
    if entry.startswith("["):
        name, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return name, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name, int(port) if port.isdigit() else None
    return entry, None  # a bare name, or an IPv6 address / range without brackets


@dataclass(frozen=True, slots=True)
class ProxyRules:
    """The proxies for http:// and https:// upstreams and the hosts that bypass them."""

    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> ProxyRules:
        """Read ``HTTP(S)_PROXY`` / ``NO_PROXY`` (lower-case first); ValueError for an unusable proxy URL."""
        env = os.environ if env is None else env

        def variable(name: str) -> tuple[str, str] | None:
            for spelling in (name.lower(), name.upper()):
                value = env.get(spelling)
                if value and value.strip():
                    return spelling, value
            return None

        proxies: dict[str, Proxy | None] = {}
        for scheme in ("http", "https"):
            found = variable(f"{scheme}_proxy")
            proxies[scheme] = parse_proxy_url(found[1], found[0]) if found else None
        found = variable("no_proxy")
        no_proxy = tuple(e.strip().lower() for e in found[1].split(",") if e.strip()) if found else ()
        return cls(proxies["http"], proxies["https"], no_proxy)

    def for_origin(self, scheme: str, host: str, port: int) -> Proxy | None:
        """The proxy connections to this origin go through, or None to connect directly."""
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or bypasses(host, port, self.no_proxy):
            return None
        return proxy

    def describe(self) -> str:
        """One line for the log: where each scheme goes (never credentials)."""
        parts = [f"{scheme}:// via {proxy.label}" for scheme, proxy in (("https", self.https), ("http", self.http)) if proxy]
        if not parts:
            return "direct"
        if self.no_proxy:
            parts.append("except " + ",".join(self.no_proxy))
        return "; ".join(parts)


class _TunnelHandshake(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT: (its head, whether more bytes followed it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.answer: asyncio.Future[tuple[bytes, bool]] = loop.create_future()
        self._buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        if self.answer.done():
            return
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end >= 0:
            # Nothing may follow a 2xx before the client speaks (a refusal's body is not read).
            self.answer.set_result((bytes(self._buffer[:end]), end + 4 < len(self._buffer)))
        elif len(self._buffer) > MAX_CONNECT_RESPONSE:
            self.answer.set_exception(UpstreamConnectError("the proxy's answer to CONNECT is too large"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(UpstreamConnectError("the proxy closed the connection during CONNECT"))


async def open_tunnel(loop: asyncio.AbstractEventLoop, proxy: Proxy, host: str, port: int) -> asyncio.Transport:
    """A TCP connection to `proxy`, turned by CONNECT into a tunnel to host:port.

    Returns the raw transport, ready for TLS (``loop.start_tls``) or plain HTTP. Raises
    `UpstreamConnectError` if the proxy cannot be reached or refuses (status not 2xx).
    """
    name = host.encode("ascii") if host.isascii() else host.encode("idna")
    authority = b"[%s]:%d" % (name, port) if b":" in name else b"%s:%d" % (name, port)
    target = f"{authority.decode('ascii')} via the proxy {proxy.label}"
    handshake = _TunnelHandshake(loop)
    try:
        transport, _ = await loop.create_connection(lambda: handshake, proxy.host, proxy.port)
    except OSError as exc:
        raise UpstreamConnectError(f"cannot connect to {target}: {exc}") from exc
    try:
        transport.write(
            b"CONNECT %s HTTP/1.1\r\nhost: %s\r\n%suser-agent: keystile\r\n\r\n" % (authority, authority, proxy.header_lines())
        )
        try:
            head, trailing = await handshake.answer
        except UpstreamConnectError as exc:
            raise UpstreamConnectError(f"cannot connect to {target}: {exc}") from None
        status_line = head.split(b"\r\n", 1)[0]
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise UpstreamConnectError(f"cannot connect to {target}: the proxy did not answer CONNECT in HTTP")
        status = int(parts[1])
        if not 200 <= status < 300:
            reason = parts[2].decode("latin-1")[:100] if len(parts) > 2 else ""
            raise UpstreamConnectError(f"cannot connect to {target}: the proxy answered CONNECT with {status} {reason}".rstrip())
        if trailing:
            raise UpstreamConnectError(f"cannot connect to {target}: the proxy sent data after accepting CONNECT")
    except BaseException:
        transport.abort()
        raise
    return transport  # type: ignore[return-value]
