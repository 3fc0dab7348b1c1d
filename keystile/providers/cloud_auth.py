"""Cloud credentials for upstream calls: AWS Signature Version 4 (Bedrock) and Google OAuth
access tokens (Vertex AI), kept off the request path.

Both libraries are optional extras, imported only when a deployment needs them: botocore
(``keystile[bedrock]``) for its SigV4 signer and credential chain (environment, shared profile
and config, web identity, container and instance metadata), google-auth (``keystile[vertex]``)
for Application Default Credentials and service-account tokens. Looking credentials up and
refreshing them is network I/O, so it runs in a worker thread, once for all the requests that
arrive meanwhile, and ahead of expiry in the background: a request waits only for the very
first lookup, or when what it holds has already expired. Signing a request is CPU only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timezone
from typing import Any, Callable

from keystile.config.model import AwsCredentials
from keystile.upstream.errors import UpstreamError

log = logging.getLogger("keystile.providers.cloud_auth")
AWS_SERVICE = "bedrock"
"""The SigV4 signing name of bedrock-runtime."""
GOOGLE_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
_CHECK_EVERY = 1.0  # seconds between two looks at AWS credentials' expiry
_RETRY_AFTER_FAILURE = 5.0  # seconds a failed lookup is remembered, so a broken chain is not hammered
_TOKEN_MARGIN = 300.0  # refresh a Google token this long before it expires (or halfway, if it lives less)


class CredentialsUnavailable(UpstreamError):
    """The deployment's cloud credentials could not be found or refreshed; the router retries
    or falls back as for an upstream that cannot be reached."""


class _SharedLookup:
    """Runs a blocking lookup in a worker thread, one at a time, and remembers a failure briefly."""

    def __init__(self, fetch: Callable[[], Any]) -> None:
        self._fetch = fetch
        self._task: asyncio.Task | None = None
        self._failed: tuple[float, str] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def __call__(self) -> Any:
        failed = self._failed
        if failed is not None and time.monotonic() < failed[0] and not self.running:
            raise CredentialsUnavailable(failed[1])
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run())
        # shield: a waiting request that is cancelled must not cancel the lookup the others share
        return await asyncio.shield(self._task)  # type: ignore[arg-type]

    def start(self) -> None:
        """Begin a lookup in the background (if none is running); its result is picked up later."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run())
            self._task.add_done_callback(_consume)

    async def _run(self) -> Any:
        try:
            result = await asyncio.to_thread(self._fetch)
        except CredentialsUnavailable as exc:
            self._failed = (time.monotonic() + _RETRY_AFTER_FAILURE, str(exc))
            raise
        except Exception as exc:  # the libraries raise many kinds; the message says which
            message = f"{type(exc).__name__}: {exc}"[:300]
            self._failed = (time.monotonic() + _RETRY_AFTER_FAILURE, message)
            raise CredentialsUnavailable(message) from None
        self._failed = None
        return result


def _consume(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("refreshing cloud credentials failed: %s", task.exception())


class SigV4Signer:
    """Signs Bedrock requests for one region with one source of AWS credentials."""

    def __init__(self, credentials: AwsCredentials, region: str) -> None:
        self.config = credentials
        self.region = region
        self._source: Any = None  # botocore Credentials or RefreshableCredentials
        self._frozen: Any = None  # botocore ReadOnlyCredentials: what requests are signed with
        self._next_check = 0.0
        self._lookup = _SharedLookup(self._resolve)
        self._auth: Any = None  # botocore SigV4Auth for the current credentials

    async def headers(self, url: str, host: str, content_type: bytes, body: bytes) -> list[tuple[bytes, bytes]]:
        """``x-amz-date``, ``x-amz-security-token`` (temporary credentials) and ``authorization``
        for a POST of ``body`` to ``url``, sent with exactly ``host`` and ``content_type``."""
        frozen = self._frozen
        if frozen is None:
            frozen = self._frozen = await self._lookup()
        else:
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + _CHECK_EVERY
                self._maybe_refresh()
        auth = self._auth
        if auth is None or auth.credentials is not frozen:
            from botocore.auth import SigV4Auth

            auth = self._auth = SigV4Auth(frozen, AWS_SERVICE, self.region)
        request = _SigningRequest(url, body, {"host": host, "content-type": content_type.decode()})
        auth.add_auth(request)
        headers = request.headers
        out = [(b"x-amz-date", headers["x-amz-date"].encode())]
        if frozen.token:
            out.append((b"x-amz-security-token", frozen.token.encode()))
        out.append((b"authorization", headers["authorization"].encode()))
        return out

    def _resolve(self) -> Any:
        """(worker thread) The credentials, from the config or botocore's chain, frozen."""
        if self._source is None:
            self._source = load_aws_credentials(self.config)
        if self._source is None:
            raise CredentialsUnavailable("no AWS credentials found (environment, profile, web identity, instance metadata)")
        return self._source.get_frozen_credentials()

    def _maybe_refresh(self) -> None:
        """Within botocore's advisory window, refresh in the background and keep signing meanwhile."""
        needed = getattr(self._source, "refresh_needed", None)
        if needed is not None and needed() and not self._lookup.running:
            self._lookup.start()
            self._lookup._task.add_done_callback(self._refreshed)  # type: ignore[union-attr]

    def _refreshed(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is None:
            self._frozen = task.result()


class _Headers(dict):
    """Request headers with case-insensitive names, as ``SigV4Auth`` reads and writes them."""

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __setitem__(self, name: str, value: str) -> None:
        super().__setitem__(name.lower(), value)

    def __delitem__(self, name: str) -> None:
        super().__delitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get_all(self, name: str, failobj: Any = None) -> list[str]:
        value = self.get(name.lower())
        return [value] if value is not None else (failobj if failobj is not None else [])


class _SigningRequest:
    """The part of botocore's ``AWSRequest`` that ``SigV4Auth.add_auth`` reads: method, URL, body,
    headers, query parameters and context. ``AWSRequest`` also prepares a sendable request on
    every body access (email-style headers, a copy of the body), which doubled the cost of a
    signature (~0.14 ms → ~0.07 ms on the project's machine); signing stays botocore's.
    The mock upstream checks every signature with botocore's own ``AWSRequest`` path."""

    __slots__ = ("method", "url", "body", "headers", "params", "context")

    def __init__(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        self.method = "POST"
        self.url = url
        self.body = body
        self.headers = _Headers(headers)
        self.params: dict = {}
        self.context: dict = {}


def load_aws_credentials(config: AwsCredentials) -> Any:
    """botocore credentials: static ones from the config, else the chain (of ``profile`` if named)."""
    from botocore.credentials import Credentials
    from botocore.session import Session

    if config.access_key_id and config.secret_access_key:
        return Credentials(config.access_key_id, config.secret_access_key, config.session_token)
    session = Session(profile=config.profile) if config.profile else Session()
    return session.get_credentials()


class GoogleToken:
    """OAuth access tokens from one source of Google credentials, as a ready ``authorization`` header.

    ``spec`` is a service-account (or other credentials) JSON file's path, its JSON text, or None
    for Application Default Credentials. Tokens are refreshed ``_TOKEN_MARGIN`` before they
    expire (halfway through a shorter life) by a background lookup; requests keep the current
    token meanwhile.
    """

    def __init__(self, spec: str | None) -> None:
        self.spec = spec
        self._credentials: Any = None
        self._request: Any = None
        self._header: bytes | None = None
        self._refresh_at = 0.0
        self._expires_at = 0.0
        self._lookup = _SharedLookup(self._fetch)
        self.fetches = 0
        """Tokens fetched so far (one per refresh, however many requests)."""

    async def header(self) -> bytes:
        now = time.time()
        header = self._header
        if header is not None and now < self._refresh_at:
            return header
        if header is not None and now < self._expires_at:
            if not self._lookup.running:
                self._lookup.start()
                self._lookup._task.add_done_callback(self._refreshed)  # type: ignore[union-attr]
            return header
        self._install(await self._lookup())
        return self._header  # type: ignore[return-value]

    def _refreshed(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is None:
            self._install(task.result())

    def _install(self, result: tuple[str, float]) -> None:
        token, expires_at = result
        now = time.time()
        self._header = b"authorization: Bearer " + token.encode() + b"\r\n"
        self._expires_at = expires_at
        self._refresh_at = expires_at - min(_TOKEN_MARGIN, max(expires_at - now, 0.0) / 2)

    def _fetch(self) -> tuple[str, float]:
        """(worker thread) A fresh token and the time it expires."""
        import google.auth.transport.requests

        if self._credentials is None:
            self._credentials = load_google_credentials(self.spec)
            self._request = google.auth.transport.requests.Request()
        self._credentials.refresh(self._request)
        self.fetches += 1
        token = self._credentials.token
        if not token:
            raise CredentialsUnavailable("Google credentials returned no access token")
        expiry = self._credentials.expiry  # naive UTC, or None
        expires_at = expiry.replace(tzinfo=timezone.utc).timestamp() if expiry is not None else time.time() + 3600
        return token, expires_at


def load_google_credentials(spec: str | None) -> Any:
    import google.auth

    if spec is None:
        credentials, _project = google.auth.default(scopes=list(GOOGLE_SCOPES))
        return credentials
    if spec.lstrip().startswith("{"):
        import json

        credentials, _project = google.auth.load_credentials_from_dict(json.loads(spec), scopes=list(GOOGLE_SCOPES))
        return credentials
    credentials, _project = google.auth.load_credentials_from_file(spec, scopes=list(GOOGLE_SCOPES))
    return credentials
