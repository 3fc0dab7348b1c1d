"""Real PostgreSQL and Redis for the tests marked ``services``, through ``tests/services.sh``.

``make test`` starts the shared servers and exports their URLs
(``KEYSTILE_TEST_POSTGRES_URL``, ``KEYSTILE_TEST_REDIS_URL``). A plain ``pytest`` run starts
them itself the same way. If they cannot be started the tests fail, loudly; only a local run
with ``KEYSTILE_SKIP_SERVICES=1`` (ignored when ``CI`` is set) skips them, saying so.

``PrivateServices`` is a second pair, in a directory and on ports of its own, for the tests
that stop and start servers: they never disturb the shared ones, or another test run's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("services.sh")


@dataclass(frozen=True)
class ServiceUrls:
    postgres: str
    redis: str


def _exports(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line[len("export "):].split("=", 1)
            out[name] = value
    return out


def shared_services() -> ServiceUrls:
    """The URLs of the shared servers, starting them if this run has none yet."""
    pg = os.environ.get("KEYSTILE_TEST_POSTGRES_URL")
    redis = os.environ.get("KEYSTILE_TEST_REDIS_URL")
    if pg and redis:
        return ServiceUrls(pg, redis)
    if os.environ.get("KEYSTILE_SKIP_SERVICES") == "1" and not os.environ.get("CI"):
        pytest.skip("KEYSTILE_SKIP_SERVICES=1: the PostgreSQL/Redis tests are skipped (unset it to run them)")
    result = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.fail(
            f"tests/services.sh could not start PostgreSQL and Redis (exit {result.returncode}):\n{result.stderr}\n"
            "Fix the servers, or for a local run only set KEYSTILE_SKIP_SERVICES=1 to skip these tests.",
            pytrace=False,
        )
    os.environ.update(_exports(result.stdout))
    return ServiceUrls(os.environ["KEYSTILE_TEST_POSTGRES_URL"], os.environ["KEYSTILE_TEST_REDIS_URL"])


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def _admin(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def create_database(server_url: str, prefix: str = "ks_test") -> str:
    """A new, empty database on the server at ``server_url``; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    return _with_database(server_url, name)


def drop_database(server_url: str, database_url: str) -> None:
    name = database_url.rpartition("/")[2]
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateServices:
    """A PostgreSQL and a Redis of this test's own, which it may stop and start at will."""

    def __init__(self) -> None:
        shared_services()  # same skip/fail rules, and the servers are installed
        self.dir = Path(tempfile.mkdtemp(prefix="keystile-services-"))
        self.dir.chmod(0o755)  # the postgres user must reach its cluster inside
        self.pg_port = free_port()
        self.redis_port = free_port()
        self.env = {
            **os.environ,
            "KEYSTILE_SERVICES_DIR": str(self.dir),
            "KEYSTILE_TEST_PG_PORT": str(self.pg_port),
            "KEYSTILE_TEST_REDIS_PORT": str(self.redis_port),
        }
        self.postgres_url = f"postgresql://postgres@127.0.0.1:{self.pg_port}/postgres"
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"

    def run(self, command: str) -> None:
        result = subprocess.run(["bash", str(SCRIPT), command], env=self.env, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"tests/services.sh {command} failed:\n{result.stderr}")

    def start(self) -> "PrivateServices":
        self.run("start")
        return self

    def stop_redis(self) -> None:
        self.run("stop-redis")

    def start_redis(self) -> None:
        self.run("start-redis")

    def stop_postgres(self) -> None:
        self.run("stop-postgres")

    def start_postgres(self) -> None:
        self.run("start-postgres")

    def close(self) -> None:
        try:
            self.run("stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
