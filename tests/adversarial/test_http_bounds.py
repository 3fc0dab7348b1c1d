"""The HTTP layer's bounds hold before the application runs (issue 11, item 2).

Each test opens hostile connections against a real ``keystile serve`` — header floods, a
socket that never speaks, a header block or body that drips, more sockets than the worker may
hold — and checks what a peer can observe: the status it gets and when, the worker's resident
memory (``/proc/<pid>/status``), its open descriptors, and that a normal request is served
meanwhile. Timeouts are configured short so the whole file takes seconds.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import socket
import subprocess
import threading
import time
from typing import Callable, Iterator

import httpx
import orjson
import pytest

from tests.integration import harness
from tests.integration.harness import GatewayProcess, anthropic_body

HEADER_LIMIT = 16 * 1024
HEADER_TIMEOUT = 1.5
BODY_WINDOW = 1.0
BODY_MIN_RATE = 1000

CONFIG = f"""\
models:
  - name: m
    provider: mock
server:
  max_header_bytes: {HEADER_LIMIT}
  header_timeout: {HEADER_TIMEOUT}s
  body_timeout: {BODY_WINDOW}s
  body_min_rate: {BODY_MIN_RATE}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[GatewayProcess]:
    with GatewayProcess(CONFIG, workdir=tmp_path_factory.mktemp("bounds")) as gw:
        yield gw


@pytest.fixture(scope="module")
def key(gateway: GatewayProcess) -> str:
    return gateway.create_key()


# --- what a peer can observe -------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def connect(gw: GatewayProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gw.port), timeout=10)


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    start = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f"still open after {timeout} s; received {data[:200]!r}") from None
        if not chunk:
            return data, time.monotonic() - start
        data += chunk


def parse(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def normal_request(gw: GatewayProcess, key: str) -> int:
    response = httpx.post(f"{gw.url}/v1/messages", json=anthropic_body(model="m"), headers={"x-api-key": key}, timeout=10)
    return response.status_code


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def flood(gw: GatewayProcess, path: str, *, one_line: bool = False, budget: int = 256 << 20) -> tuple[bytes, int]:
    """Send an endless header block until the server answers (or ``budget`` bytes went out).

    Returns the answer and how many bytes had been sent when it came. ``one_line``: a single
    header whose value never ends, so the parser never hands a complete header over.
    """
    sock = connect(gw)
    sent = 0
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\n".encode() + (b"x-flood: " if one_line else b""))
        line = b"a" * 65536 if one_line else b"".join(b"x-flood-%05d: %s\r\n" % (i, b"v" * 100) for i in range(560))
        while sent < budget:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered
            try:
                sock.sendall(line)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(line)
        answer, _ = read_until_closed(sock, timeout=10)
        return answer, sent
    finally:
        sock.close()


# --- the header block ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,shape",
    [("/v1/messages", "anthropic"), ("/health/liveness", "openai"), ("/key/list", "openai"), ("/no/such/route", "openai"),
     ("/bedrock/model/us.anthropic.claude-x/invoke", "bedrock")],
)
def test_a_header_flood_is_refused_with_431_while_it_is_read_on_every_route(gateway, path, shape):
    for one_line in (False, True):
        answer, sent = flood(gateway, path, one_line=one_line)
        assert answer, f"no answer after {sent} bytes"
        status, headers, body = parse(answer)
        assert status == 431 and headers["connection"] == "close", answer[:300]
        error = orjson.loads(body)
        if shape == "anthropic":
            assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
        elif shape == "bedrock":  # AWS's shape: the message, and the error's name in a header
            assert set(error) == {"message"} and headers["x-amzn-errortype"] == "ValidationException"
        else:
            assert error["error"]["code"] == "headers_too_large"
        # Refused long before the flood's 256 MB went out: what the kernel's socket buffers
        # hold (a few MB on loopback) plus the limit.
        assert sent < 32 << 20, sent


def test_the_header_limit_counts_the_request_line_and_headers(gateway, key):
    """Counted as url + name + value + 4 per header (the ': ' and CRLF), as the README says."""

    def status(padding: int) -> int:
        url = "/health/liveness"
        fixed = len(url) + sum(len(n) + len(v) + 4 for n, v in (("host", f"127.0.0.1:{gateway.port}"), ("x-pad", "")))
        sock = connect(gateway)
        try:
            sock.sendall(f"GET {url} HTTP/1.1\r\nhost: 127.0.0.1:{gateway.port}\r\nx-pad: {'p' * (padding - fixed)}\r\nconnection: close\r\n\r\n".encode())
            return parse(read_until_closed(sock, 10)[0])[0]
        finally:
            sock.close()

    connection_close = len("connection") + len("close") + 4
    assert status(HEADER_LIMIT - connection_close) == 200  # exactly at the limit
    assert status(HEADER_LIMIT - connection_close + 1) == 431


def test_floods_leave_the_worker_near_its_baseline_memory(gateway, key):
    pid = gateway.proc.pid
    for _ in range(20):
        assert normal_request(gateway, key) == 200
    baseline = rss_mb(pid)
    peak = baseline
    results: list[int] = []

    def attack() -> None:
        for one_line in (False, True, False):
            answer, _ = flood(gateway, "/v1/messages", one_line=one_line, budget=64 << 20)
            results.append(parse(answer)[0] if answer else 0)

    threads = [threading.Thread(target=attack) for _ in range(8)]
    for thread in threads:
        thread.start()
    served_meanwhile = 0
    while any(thread.is_alive() for thread in threads):
        peak = max(peak, rss_mb(pid))
        if normal_request(gateway, key) == 200:
            served_meanwhile += 1
    for thread in threads:
        thread.join()
    assert results == [431] * 24
    assert served_meanwhile >= 1
    # Each flood is cut after ~16 KB (plus one 256 KB socket read); unbounded, 24 floods of up to
    # 64 MB held hundreds of MB (one 800 MB flood took a worker from 40 MB to 1.23 GB).
    assert peak - baseline < 40, (baseline, peak)
    assert eventually(lambda: rss_mb(pid) - baseline < 10), (baseline, rss_mb(pid))
    assert normal_request(gateway, key) == 200


# --- read deadlines ----------------------------------------------------------------------------


def test_a_connection_that_never_sends_a_request_is_closed(gateway, key):
    sock = connect(gateway)
    try:
        assert normal_request(gateway, key) == 200  # served meanwhile
        data, waited = read_until_closed(sock, timeout=HEADER_TIMEOUT + 8)
        assert data == b""  # nothing to answer: a quiet close
        assert HEADER_TIMEOUT - 0.3 < waited < HEADER_TIMEOUT + 8
    finally:
        sock.close()


def test_a_header_block_sent_byte_by_byte_gets_408_at_its_deadline(gateway, key):
    sock = connect(gateway)
    request = b"GET /health/liveness HTTP/1.1\r\nhost: x\r\nx-slow: " + b"s" * 1000
    start = time.monotonic()
    answer = b""
    try:
        for byte in request:
            if select.select([sock], [], [], 0.1)[0]:
                break
            try:
                sock.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if time.monotonic() - start > HEADER_TIMEOUT + 8:
                break
        assert normal_request(gateway, key) == 200
        answer, _ = read_until_closed(sock, timeout=10)
    finally:
        sock.close()
    waited = time.monotonic() - start
    status, _, body = parse(answer)
    assert status == 408 and orjson.loads(body)["error"]["code"] == "request_timeout"
    assert HEADER_TIMEOUT - 0.3 < waited < HEADER_TIMEOUT + 8


def test_a_keep_alive_connection_may_wait_longer_than_the_header_deadline_between_requests(gateway):
    """The header deadline runs from a request's first byte; between requests keep_alive_timeout applies."""
    sock = connect(gateway)
    try:
        for _ in range(2):
            sock.sendall(b"GET /health/liveness HTTP/1.1\r\nhost: x\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                assert chunk, "closed instead of answering"
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), head
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")))
            while len(body) < length:  # the whole answer, so the next read starts at the next one
                chunk = sock.recv(4096)
                assert chunk, "closed in the middle of an answer"
                body += chunk
            time.sleep(HEADER_TIMEOUT + 1)  # idle on purpose: longer than the header deadline
    finally:
        sock.close()


def _post_slowly(gateway: GatewayProcess, key: str, body: bytes, piece: int, pause: float, limit: float) -> tuple[bytes, float]:
    """POST ``body`` to /v1/messages in ``piece``-byte writes ``pause`` s apart; stop early if answered."""
    sock = connect(gateway)
    start = time.monotonic()
    try:
        sock.sendall(
            f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {key}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        )
        for offset in range(0, len(body), piece):
            if select.select([sock], [], [], pause)[0] or time.monotonic() - start > limit:
                break
            try:
                sock.sendall(body[offset: offset + piece])
            except (BrokenPipeError, ConnectionResetError):
                break
        answer, _ = read_until_closed(sock, timeout=10)
        return answer, time.monotonic() - start
    finally:
        sock.close()


def test_a_body_that_drips_gets_408(gateway, key):
    body = orjson.dumps(anthropic_body(model="m", text="x" * 500))
    result: list = []
    thread = threading.Thread(target=lambda: result.append(_post_slowly(gateway, key, body, 1, 0.2, limit=15)))
    thread.start()
    assert normal_request(gateway, key) == 200  # served meanwhile
    thread.join()
    answer, waited = result[0]
    status, _, error = parse(answer)
    assert status == 408, answer[:300]
    assert orjson.loads(error)["error"]["type"] == "timeout_error"  # Anthropic's shape on /v1/messages
    # The first window that brings fewer than BODY_MIN_RATE × BODY_WINDOW bytes ends it.
    assert BODY_WINDOW - 0.3 < waited < 2 * BODY_WINDOW + 8


def test_a_body_faster_than_the_minimum_rate_is_served_however_long_it_takes(gateway, key):
    body = orjson.dumps(anthropic_body(model="m", text="x" * 9000))  # ~9 KB at ~4 KB/s: over two windows
    answer, waited = _post_slowly(gateway, key, body, 400, 0.1, limit=30)
    assert parse(answer)[0] == 200, answer[:300]
    assert waited > 2 * BODY_WINDOW


# --- the connection cap ------------------------------------------------------------------------


def established(port: int) -> list[int]:
    """Receive-queue sizes of the server's end of every established connection on ``port``."""
    queues = []
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].split(":")[1], 16)
            if local_port == port and fields[3] == "01":
                queues.append(int(fields[4].split(":")[1], 16))
    return queues


def test_past_max_connections_an_idle_one_makes_room_and_otherwise_a_clean_503(tmp_path):
    cap = 16
    config = CONFIG.replace(f"header_timeout: {HEADER_TIMEOUT}s", "header_timeout: 20s") + f"  max_connections: {cap}\n"
    with _fd_limit_for_children(soft=256, hard=None), GatewayProcess(config, workdir=tmp_path) as gw:
        # The soft descriptor limit is raised to the hard one at start.
        limits = open(f"/proc/{gw.proc.pid}/limits").read()
        line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert line.split()[3] == line.split()[4], line
        key = gw.create_key()

        # Every slot busy reading a header block: the next request is answered 503, not reset.
        busy = [connect(gw) for _ in range(cap)]
        for sock in busy:
            sock.sendall(b"GET /health/liveness HTTP/1.1\r\n")
        assert eventually(lambda: len(established(gw.port)) >= cap and not any(established(gw.port)))
        refused = httpx.post(f"{gw.url}/v1/messages", json=anthropic_body(model="m"), headers={"x-api-key": key}, timeout=10)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["type"] == "api_error"
        busy.pop().close()
        assert eventually(lambda: normal_request(gw, key) == 200)
        for sock in busy:
            sock.close()

        # Every slot idle: a newcomer closes the one that waited longest and is served.
        idle = [connect(gw) for _ in range(cap)]
        assert eventually(lambda: len(established(gw.port)) >= cap)
        assert normal_request(gw, key) == 200
        assert eventually(lambda: _closed_by_server(idle[0]))
        for sock in idle:
            sock.close()


def test_sockets_past_the_descriptor_limit_never_cost_a_request(tmp_path):
    """The issue's case: with `ulimit -n 300`, 290 idle sockets made a real request fail with a reset."""
    with _fd_limit_for_children(soft=300, hard=300), GatewayProcess(CONFIG.replace(f"{HEADER_TIMEOUT}s", "30s"), workdir=tmp_path) as gw:
        assert "max_connections lowered from 4096 to 118" in gw.log()  # (300 - 64) // 2
        key = gw.create_key()
        pid = gw.proc.pid
        sockets = []
        try:
            most = 0
            for _ in range(290):
                sockets.append(connect(gw))
                most = max(most, open_fds(pid))
            for _ in range(5):
                assert normal_request(gw, key) == 200
                most = max(most, open_fds(pid))
            assert most < 300
            assert eventually(lambda: sum(_closed_by_server(s) for s in sockets) >= 290 - 118)
        finally:
            for sock in sockets:
                sock.close()
        assert normal_request(gw, key) == 200


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        sock.setblocking(False)
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True
    finally:
        sock.setblocking(True)


@contextlib.contextmanager
def _fd_limit_for_children(soft: int, hard: int | None) -> Iterator[None]:
    """Processes started inside get RLIMIT_NOFILE (soft, hard) — ``ulimit -n`` for the gateway only.

    ``hard=None`` keeps the current hard limit (so the gateway can raise its soft one)."""
    real_popen = subprocess.Popen
    current_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, current_hard if hard is None else hard))

    def popen(*args, **kwargs):  # type: ignore[no-untyped-def]
        return real_popen(*args, preexec_fn=limit, **kwargs)

    harness.subprocess.Popen = popen  # type: ignore[misc]
    try:
        yield
    finally:
        harness.subprocess.Popen = real_popen  # type: ignore[misc]
