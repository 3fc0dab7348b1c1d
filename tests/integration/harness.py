"""Run keystile as a real server process for integration tests, and talk to it over HTTP.

``GatewayProcess`` writes a config, starts ``keystile serve`` on a free 127.0.0.1 port,
waits until it is ready, captures everything it prints (tests grep it for secrets), and
stops it with SIGTERM like an operator would.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

MASTER_KEY = "sk-ks-test-master-0123456789abcdef"
UPSTREAM_ANTHROPIC_KEY = "sk-upstream-anthropic-SECRET-1111"
UPSTREAM_OPENAI_KEY = "sk-upstream-openai-SECRET-2222"
UPSTREAM_AZURE_KEY = "azure-upstream-SECRET-3333"
OAUTH_TOKEN = "sk-ant-oat01-client-oauth-token-SECRET-4444"
CLIENT_ANTHROPIC_API_KEY = "sk-ant-api03-client-api-key-SECRET-5555"
KEYSTILE = str(Path(sys.executable).with_name("keystile"))
_RUNNING: set[subprocess.Popen] = set()
"""Gateways started and not stopped: a test that forgets one must not leave it running."""


@atexit.register
def _stop_forgotten_gateways() -> None:
    for proc in list(_RUNNING):
        if proc.poll() is None:
            sys.stderr.write(f"harness: a test left keystile (pid {proc.pid}) running; stopping it\n")
            proc.kill()
            proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def standard_config(upstream_url: str, *, extra_models: str = "", extra: str = "") -> str:
    """Models on every provider kind, all pointed at the mock upstream."""
    return textwrap.dedent(
        f"""\
        models:
          - name: claude-test
            provider: anthropic
            model: claude-sonnet-4-5-20250929
            api_base: {upstream_url}
            api_key: {UPSTREAM_ANTHROPIC_KEY}
          - name: claude-forward
            provider: anthropic
            model: claude-sonnet-4-5-20250929
            api_base: {upstream_url}
            api_key: {UPSTREAM_ANTHROPIC_KEY}
            forward_client_credentials: true
          - name: gpt-test
            provider: openai
            model: gpt-4o-2024-08-06
            api_base: {upstream_url}/v1
            api_key: {UPSTREAM_OPENAI_KEY}
          - name: gpt-forward
            provider: openai
            model: gpt-4o
            api_base: {upstream_url}/v1
            api_key: {UPSTREAM_OPENAI_KEY}
            forward_client_credentials: true
          - name: azure-test
            provider: azure
            model: my-gpt4o-deployment
            api_base: {upstream_url}
            api_key: {UPSTREAM_AZURE_KEY}
            api_version: "2024-10-21"
          - name: embed-test
            provider: openai
            model: text-embedding-3-small
            api_base: {upstream_url}/v1
            api_key: {UPSTREAM_OPENAI_KEY}
          - name: mock-builtin
            provider: mock
        """
    ) + textwrap.indent(textwrap.dedent(extra_models), "  ") + textwrap.dedent(extra)


class GatewayProcess:
    def __init__(
        self,
        config: str | None,
        *,
        workdir: Path | None = None,
        env: dict[str, str] | None = None,
        master_key: str | None = MASTER_KEY,
        workers: int = 1,
        port: int | None = None,
    ) -> None:
        self.dir = workdir or Path(tempfile.mkdtemp(prefix="keystile-test-"))
        # None: no --config, so keystile serves its built-in default (what `make run` starts).
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = self.dir / "keystile.yaml"
            self.config_path.write_text(config)
        self.log_path = self.dir / "gateway.log"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.master_key = master_key
        self.workers = workers
        self.env = dict(os.environ)
        self.env.pop("KEYSTILE_MASTER_KEY", None)
        if master_key:
            self.env["KEYSTILE_MASTER_KEY"] = master_key
        self.env.setdefault("KEYSTILE_DATABASE_URL", f"sqlite:///{self.dir / 'keystile.db'}")
        self.env.update(env or {})
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout: float = 15.0) -> "GatewayProcess":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [KEYSTILE, "serve", *(["--config", str(self.config_path)] if self.config_path else []),
             "--port", str(self.port), "--workers", str(self.workers)],
            cwd=self.dir,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        _RUNNING.add(self.proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"keystile exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health/readiness", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"keystile did not become ready in {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        _RUNNING.discard(self.proc)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- admin helpers --------------------------------------------------------------------------

    def admin(self, method: str, path: str, json: Any = None, params: dict | None = None, key: str | None = None) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.url}{path}",
            json=json,
            params=params,
            headers={"authorization": f"Bearer {key or self.master_key}"},
            timeout=10,
        )

    def create_key(self, **fields: Any) -> str:
        response = self.admin("POST", "/key/generate", json=fields)
        assert response.status_code == 200, response.text
        return response.json()["key"]

    def __enter__(self) -> "GatewayProcess":
        # ``with gw.start():`` and ``with gw:`` both mean one running gateway (a second start
        # here used to leave the first process running when the block ended).
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def anthropic_body(model: str = "claude-test", text: str = "Hello", **extra: Any) -> dict:
    return {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}], **extra}


def openai_body(model: str = "gpt-test", text: str = "Hello", **extra: Any) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}
