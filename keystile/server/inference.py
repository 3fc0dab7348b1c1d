"""The hot path: one handler that runs every inference request through the pipeline, in order.

    credentials → authenticate → authorize → route → provider adapter → upstream
    → response or stream, in the client's format → account

The handler is format-agnostic: what differs between Anthropic Messages, Chat Completions,
Responses, Gemini, Bedrock InvokeModel and Vertex rawPredict lives in ``keystile.formats``
(read the request, convert through the Messages hub, frame answers, streams and errors). Everything before the upstream call is in
memory (cached keys, in-process counters); the only awaits are the body, the upstream and —
rarely — a key-cache miss. Accounting happens after the client has its last byte.

What the upstream receives is always serialised from the object keystile parsed, checked,
priced and limited — never the client's bytes with a splice — so a body with duplicate keys
(``"model"`` twice, an escaped ``"mod\\u0065l"``) cannot make the upstream act on a
different request than the one keystile accounted for. (orjson writes a 76 KB Claude Code
body in ~16 µs, less than scanning it for such duplicates would cost.)
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

import orjson

from keystile.accounting.meters import usage_of_cut_stream
from keystile.accounting.spend import next_request_id
from keystile.accounting.tags import TAG_HEADERS, call_type_of, request_tags, without_body_tags
from keystile.accounting.usage import Usage
from keystile.apiformat import ANTHROPIC_FAMILY, ApiFormat
from keystile.auth import Identity
from keystile.config.model import Deployment
from keystile.credentials import CREDENTIAL_HEADER_NAMES, UpstreamCredential, credentials_from
from keystile.errors import ErrorKind, GatewayError, error_headers
from keystile.formats import EVENT_FORMAT, FORMATS, HEADERS_IN_BODY, PARSERS, STREAM_HEADERS
from keystile.formats.base import ClientRequest
from keystile.formats.checks import model_name, optional_bool, quote
from keystile.limits.authorize import Grant, quota_headers
from keystile.providers.answer import UnreadableAnswer, error_page, read_answer, stream_page, too_large_error
from keystile.providers.base import Operation, UpstreamCall, UpstreamResponse
from keystile.routing.router import RETRYABLE_STATUS, RoutePlan, is_context_window_error
from keystile.server.http import (
    JSON_TYPE,
    SSE_HEADERS,
    ClientDisconnected,
    DisconnectWatch,
    Receive,
    Scope,
    Send,
    read_body,
    send_bytes,
    send_error,
)
from keystile.server.memory import BurstRelease
from keystile.server.relay import Relay, make_relay
from keystile.translate.claude_code import without_billing_header
from keystile.translate.count_tokens import estimate_input_tokens
from keystile.translate.errors import error_kind_of, translate_error_body
from keystile.translate.invalid_request import json_type_name
from keystile.upstream.client import Timeouts
from keystile.upstream.errors import UpstreamConnectError, UpstreamError, UpstreamTimeout, UpstreamTooLarge

if TYPE_CHECKING:
    from keystile.server.app import Gateway
    from keystile.tracing.spans import Tracing

log = logging.getLogger("keystile.inference")

# Upstream response headers a client may see: request ids, retry hints and rate-limit state.
_PASSED_HEADERS = frozenset({b"request-id", b"x-request-id", b"retry-after", b"retry-after-ms", b"x-should-retry"})
_RATELIMIT_PREFIXES = (b"anthropic-ratelimit-", b"x-ratelimit-")
_MAX_CONTENT_LOG = 1 << 20
# Query parameters an upstream may receive from the client, by wire format (everything else —
# a Gemini client's ``key=``, tracking parameters — stays at the gateway).
_UPSTREAM_QUERY = {ApiFormat.ANTHROPIC: frozenset({"beta"})}

# The request headers the pipeline reads: credentials, the declared body size, Anthropic's
# version and betas (forwarded), and keystile's per-request overrides. ``scan_headers``
# collects them in the same pass that measures the header block.
PIPELINE_HEADERS = CREDENTIAL_HEADER_NAMES | {
    b"content-length",
    b"anthropic-version",
    b"anthropic-beta",
    b"x-keystile-max-retries",
    b"x-keystile-timeout",
    b"traceparent",  # read only when tracing is on; never forwarded upstream
    b"tracestate",
    *TAG_HEADERS,
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What a route asks for: the client's format and operation, and what its path fixes."""

    client: ApiFormat
    operation: Operation
    model: str | None = None
    """The model named by the path (Gemini, Azure), else None: it is in the body."""
    stream: bool | None = None
    """Streaming as decided by the path (Gemini's ``:streamGenerateContent``), else None."""


@dataclass(slots=True)
class UpstreamFailure:
    """The last thing that went wrong upstream, kept to tell the client if nothing works."""

    error: GatewayError | None = None
    status: int = 0
    body: bytes = b""
    wire: ApiFormat = ApiFormat.ANTHROPIC
    headers: list[tuple[bytes, bytes]] | None = None


class InferenceHandler:
    def __init__(self, gateway: "Gateway") -> None:
        self.gw = gateway
        settings = gateway.settings
        self.max_body = settings.server.max_body_bytes
        self.max_headers = settings.server.max_header_bytes
        self.default_max_tokens = settings.default_max_tokens
        self.timeouts: dict[str, Timeouts] = {}
        """Deployment id → its upstream timeouts when the request sets none (they come from the config)."""
        self.in_flight = 0
        """Admitted requests whose accounting has not finished (``drained`` waits for none)."""
        self.burst = BurstRelease()
        """The peak of ``in_flight``, and the memory release after it (checked once a second)."""
        self.call_type: type[_Call] = _Call
        self.tracing: Tracing | None = None

    def trace_with(self, tracing: "Tracing") -> None:
        """Tracing is on: each request runs as a ``TracedCall`` (spans written when it is over)."""
        from keystile.server.traced import TracedCall

        self.tracing = tracing
        self.call_type = TracedCall

    async def __call__(self, scope: Scope, receive: Receive, send: Send, endpoint: Endpoint) -> None:
        started = time.time()
        t0 = perf_counter()
        fmt = endpoint.client
        gw = self.gw
        identity: Identity | None = None
        request: ClientRequest | None = None
        try:
            size, seen = scan_headers(scope["headers"])
            if size > self.max_headers:
                raise GatewayError(
                    ErrorKind.HEADERS_TOO_LARGE, f"Request headers exceed the {self.max_headers}-byte limit."
                )
            query_key = query_key_of(scope.get("query_string", b"")) if fmt is ApiFormat.GEMINI else None
            credentials = credentials_from(seen, query_key)
            identity = await gw.authenticator.authenticate(credentials)
            request = read_request(await read_body(receive, self.max_body, _content_length(seen)), endpoint, scope)
            if fmt in HEADERS_IN_BODY:  # Bedrock: the betas ride in the body
                seen = HEADERS_IN_BODY[fmt](request.body, seen)
            group = gw.router.group(request.model)
            if group is None:
                raise GatewayError(
                    ErrorKind.MODEL_NOT_FOUND,
                    f"Model {quote(request.model)} is not served by this gateway. "
                    "GET /v1/models lists the models your key can use.",
                    param="model",
                )
            if endpoint.operation is Operation.COUNT_TOKENS:
                gw.authorizer.check_model(identity, request.model)
                grant = Grant()
            else:
                grant = await gw.authorizer.admit(
                    identity,
                    request.model,
                    gw.clock.now(),
                    group=group.name,
                    reserve=lambda: gw.reserver(request.body, group, request.model, generates=request.operation is Operation.GENERATE),
                )
        except GatewayError as error:
            request_id = None
            if identity is None or endpoint.operation is Operation.COUNT_TOKENS:
                await send_error(send, fmt, error)
                gw.access_log.request(
                    request_id=None,
                    route=scope["path"],
                    status=error.status,
                    latency=perf_counter() - t0,
                    key_alias=identity.alias if identity is not None else None,
                    key_hash=identity.token_hash if identity is not None else None,
                    model=request.model if request is not None else None,
                    error=error.message,
                )
            else:
                request_id = await self._refuse(send, fmt, error, identity, request, started, t0, scope["path"], seen)
            if self.tracing is not None:
                from keystile.server.traced import trace_refusal

                trace_refusal(gw, scope, endpoint, error, identity, request, request_id, started, t0)
            return
        except ClientDisconnected:
            return

        watch = DisconnectWatch(receive)
        call = self.call_type(self, seen, credentials.upstream, send, endpoint, identity, request, grant, started, t0, watch, scope["path"])
        self.in_flight += 1
        if self.in_flight > self.burst.peak:
            self.burst.raise_peak(self.in_flight)
        try:
            await call.run()
        except GatewayError as error:
            await call.fail(error)
        except asyncio.CancelledError:
            if not watch.disconnected:
                # Not the client: the server stopped waiting (its graceful-shutdown deadline).
                await call.cut_off_by_shutdown()
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            call.client_gone()
        finally:
            watch.stop()
            call.release()
            try:
                await call.finish()
            finally:
                self.in_flight -= 1

    async def drained(self, timeout: float) -> bool:
        """Wait until every admitted request has been accounted (at most ``timeout`` seconds).

        At shutdown the server cancels requests that outlive its grace period; their
        accounting runs as they unwind, and must land before the final spend flush.
        """
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return not self.in_flight

    async def _refuse(
        self,
        send: Send,
        fmt: ApiFormat,
        error: GatewayError,
        identity: Identity,
        request: ClientRequest | None,
        started: float,
        t0: float,
        route: str,
        seen: dict[bytes, bytes],
    ) -> str:
        """Answer a refusal after authentication, and log it (cost 0) under the caller's key; returns its request id."""
        request_id = next_request_id()
        await send_error(send, fmt, error, [(b"x-keystile-request-id", request_id.encode())])
        model = request.model if request is not None else ""
        group = self.gw.router.group(model) if model else None
        self.gw.access_log.request(
            request_id=request_id,
            route=route,
            status=error.status,
            latency=perf_counter() - t0,
            key_alias=identity.alias,
            key_hash=identity.token_hash,
            model=model or None,
            group=group.name if group is not None else None,
            stream=request.stream if request is not None else False,
            error=error.message,
        )
        self.gw.accountant.refused(
            identity,
            request_id=request_id,
            requested_model=model,
            group=group.name if group is not None else None,
            status=error.status,
            started=started,
            latency=perf_counter() - t0,
            stream=request.stream if request is not None else False,
            call_type=call_type_of(request.fmt, request.operation) if request is not None else None,
            tags=request_tags(seen, request.body if request is not None else {}),
        )
        return request_id


def scan_headers(headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[bytes, bytes]]:
    """(size of the header block as counted against ``max_header_bytes``, first value of each
    of the ``PIPELINE_HEADERS`` present) — one pass, instead of one scan per header looked up."""
    size = 0
    seen: dict[bytes, bytes] = {}
    wanted = PIPELINE_HEADERS
    for name, value in headers:
        size += len(name) + len(value)
        if name in wanted and name not in seen:
            seen[name] = value
    return size + 4 * len(headers), seen


def _content_length(seen: dict[bytes, bytes]) -> int | None:
    value = seen.get(b"content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise GatewayError(ErrorKind.INVALID_REQUEST, "The content-length header is not a number.") from None


def query_key_of(query: bytes) -> str | None:
    """A Gemini client's ``?key=`` (Google's API-key parameter); it never leaves the gateway."""
    if b"key=" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1")):
        if name == "key" and value:
            return value
    return None


_query_cache: dict[tuple[bytes, ApiFormat], bytes] = {}


def upstream_query(query: bytes, wire: ApiFormat) -> bytes:
    """The client's query parameters the upstream may see: an allow-list per wire format
    (``beta=true`` to Anthropic); nothing else is forwarded."""
    if not query:
        return b""
    key = (query, wire)
    cached = _query_cache.get(key)
    if cached is not None:
        return cached
    allowed = _UPSTREAM_QUERY.get(wire, frozenset())
    kept = [(n, v) for n, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True) if n in allowed]
    result = urlencode(kept).encode("latin-1") if kept else b""
    if len(_query_cache) < 256:  # client-chosen strings: a few distinct ones are worth remembering
        _query_cache[key] = result
    return result


def read_request(raw: bytes, endpoint: Endpoint, scope: Scope) -> ClientRequest:
    """The JSON body, checked just enough to route it; the upstream (or a translator) checks the rest."""
    if not raw:
        raise GatewayError(ErrorKind.INVALID_REQUEST, "The request body is empty; expected a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(ErrorKind.INVALID_REQUEST, f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise GatewayError(ErrorKind.INVALID_REQUEST, f"The request body must be a JSON object, not {json_type_name(body)}.")
    model = endpoint.model if endpoint.model is not None else model_name(body.get("model"))
    stream = endpoint.stream if endpoint.stream is not None else optional_bool(body, "stream")
    operation = endpoint.operation
    FORMATS[endpoint.client].check_request(body, operation)
    if operation is not Operation.GENERATE:
        stream = False
    return ClientRequest(raw, body, model, stream, scope.get("query_string", b""), endpoint.client, operation)


class _Call:
    """One request after admission: walks the route plan, relays the answer, then accounts."""

    def __init__(
        self,
        handler: InferenceHandler,
        seen: dict[bytes, bytes],
        upstream_credential: UpstreamCredential | None,
        send: Send,
        endpoint: Endpoint,
        identity: Identity,
        request: ClientRequest,
        grant: Grant,
        started: float,
        t0: float,
        watch: DisconnectWatch,
        route: str,
    ) -> None:
        self.h = handler
        self.gw = handler.gw
        self.seen = seen
        """The request headers the pipeline reads (``scan_headers``)."""
        self.upstream_credential = upstream_credential
        self.send = send
        self.endpoint = endpoint
        self.fmt = endpoint.client
        self.identity = identity
        self.request = request
        self.grant = grant
        self.started = started
        self.t0 = t0
        self.watch = watch
        self.plan: RoutePlan | None = None
        self.deployment: Deployment | None = None
        self.status = 0
        self.usage = Usage()
        self.upstream_wait = 0.0
        self.response: UpstreamResponse | None = None
        self.response_started = False
        self.response_content: str | None = None
        self.accountable = endpoint.operation is not Operation.COUNT_TOKENS
        self.relay: Relay | None = None
        self.finished = False
        self.request_id = next_request_id()
        """Names the request's spend-log row; sent to the client as ``x-keystile-request-id``."""
        self.route = route
        self.causes: list[str] = []
        """Why each failed attempt failed (``deployment: cause``), for the log and a final 5xx."""
        self.error: str | None = None

    # --- the route loop ---------------------------------------------------------------------

    async def run(self) -> None:
        gw = self.gw
        timeout = self._requested_timeout()
        plan = self.plan = gw.router.plan(self.request.model, max_retries=self._max_retries(), timeout=timeout)
        failure: UpstreamFailure | None = None  # built only when an attempt fails
        operation = self.endpoint.operation
        while True:
            deployment = plan.next()
            if deployment is None:
                await self._give_up(failure or UpstreamFailure())
                return
            if plan.attempts > 1:
                gw.metrics.retries.labels(plan.group_name).inc()
            self.deployment = deployment
            provider = gw.providers[deployment.provider]
            wire = provider.wire_format(deployment, operation, self.fmt)
            if not provider.supports(operation, wire):
                if operation is Operation.COUNT_TOKENS:
                    await self._estimate_tokens()
                    return
                raise_unsupported(deployment, operation)
            body = self._upstream_body(deployment, wire)
            call = UpstreamCall(  # positional, in field order (cheaper than keywords)
                deployment,
                operation,
                wire,
                body,
                self.request.stream,
                self.seen,  # client_headers
                self.upstream_credential if deployment.forward_client_credentials else None,
                self._timeouts(deployment, timeout),
                upstream_query(self.request.query, wire),
                self.fmt,  # client
            )
            asked = perf_counter()
            try:
                response = await provider.send(call)
            except UpstreamError as exc:
                self.upstream_wait += perf_counter() - asked
                failure = UpstreamFailure(error=_upstream_error(exc, deployment))
                error_type = type(exc).__name__
                gw.metrics.upstream_errors.labels(deployment.id, error_type).inc()
                self._attempt_failed(deployment, _describe_exception(exc), error_type)
                # No first byte in time: the upstream has the request (and the plan knows whether
                # the client's own shortened timeout is to blame rather than the deployment).
                timed_out = isinstance(exc, UpstreamTimeout) and exc.phase == "first_byte"
                await self._backoff(plan.failed(timed_out=timed_out))
                continue
            self.response = response
            if response.status >= 400:
                try:
                    error_body = await response.read()
                except UpstreamTooLarge as exc:  # an error page over upstream.max_body_bytes
                    self.upstream_wait += perf_counter() - asked
                    failure = UpstreamFailure(error=_upstream_error(exc, deployment))
                    error_type = type(exc).__name__
                    gw.metrics.upstream_errors.labels(deployment.id, error_type).inc()
                    self._attempt_failed(deployment, _describe_exception(exc), error_type)
                    await self._backoff(plan.failed())
                    continue
                except UpstreamError as exc:
                    error_body = str(exc).encode()
                finally:
                    await response.aclose()
                self.upstream_wait += perf_counter() - asked
                failure = UpstreamFailure(None, response.status, error_body, wire, response.headers)
                gw.metrics.upstream_errors.labels(deployment.id, str(response.status)).inc()
                self._attempt_failed(deployment, f"HTTP {response.status}", str(response.status))
                if response.status in RETRYABLE_STATUS:
                    await self._backoff(plan.failed(retry_after=_retry_after(response)))
                    continue
                # A client error says nothing about the deployment: no verdict, no retry.
                if is_context_window_error(response.status, error_body) and plan.context_window_exceeded():
                    continue
                plan.done()
                await self._give_up(failure)
                return
            try:
                if self.request.stream:
                    await self._relay_stream(response, wire, asked)
                else:
                    await self._relay_body(response, wire, asked)
            except _RetryableBodyFailure as exc:
                failure = exc.failure
                self._attempt_failed(
                    deployment,
                    failure.error.message if failure.error else f"in-band error {failure.status}",
                    str(failure.error.status if failure.error else failure.status),
                )
                await self._backoff(plan.failed(received=exc.received))
                continue
            return

    def _attempt_failed(self, deployment: Deployment, cause: str, error_type: str) -> None:
        """``error_type``: the upstream's HTTP status, or the failure's class (tracing's ``error.type``)."""
        self.causes.append(f"{deployment.id}: {cause}")
        log.warning("request %s: attempt %d on %s failed: %s", self.request_id, self.plan.attempts, deployment.id, cause)  # type: ignore[union-attr]

    async def _backoff(self, delay: float) -> None:
        if delay > 0:
            waited = perf_counter()
            await asyncio.sleep(delay)
            # Time spent waiting to retry is not keystile's work: x-keystile-overhead-ms excludes it.
            self.upstream_wait += perf_counter() - waited

    def _max_retries(self) -> int | None:
        raw = self.seen.get(b"x-keystile-max-retries")
        if raw is None:
            return None
        try:
            value = int(raw)
        except ValueError:
            return None
        return max(0, min(value, self.gw.settings.router.max_retries_cap))

    def _requested_timeout(self) -> float | None:
        """``x-keystile-timeout``: seconds to the first byte, capped by ``router.timeout_cap``."""
        raw = self.seen.get(b"x-keystile-timeout")
        if raw is None:
            return None
        try:
            requested = float(raw)
        except ValueError:
            return None
        if not (requested > 0 and math.isfinite(requested)):
            return None
        return min(requested, self.gw.settings.router.timeout_cap)

    def _timeouts(self, deployment: Deployment, requested: float | None) -> Timeouts:
        if requested is None:  # the usual case: the deployment's own, built once
            cached = self.h.timeouts.get(deployment.id)
            if cached is not None:
                return cached
        router = self.gw.settings.router
        timeouts = Timeouts(
            connect=deployment.connect_timeout or router.connect_timeout,
            first_byte=requested or deployment.timeout or router.timeout,
            idle=deployment.stream_idle_timeout or router.stream_idle_timeout,
        )
        if requested is None:
            self.h.timeouts[deployment.id] = timeouts
        return timeouts

    def _upstream_body(self, deployment: Deployment, wire: ApiFormat) -> bytes:
        """The body in the deployment's format, always serialised from what keystile parsed."""
        request = self.request
        if wire is request.fmt or request.operation is Operation.EMBEDDINGS:
            body = FORMATS[wire].forward(request, deployment.model)
        else:
            hub = self._hub(deployment)
            if wire not in ANTHROPIC_FAMILY:
                hub = without_billing_header(hub)
            body = FORMATS[wire].from_hub(hub, upstream_model=deployment.model, stream=request.stream)
        return orjson.dumps(without_body_tags(body))

    def _hub(self, deployment: Deployment) -> dict:
        """The request as Anthropic Messages, converted once for however many attempts need it."""
        request = self.request
        if request.hub is None:
            if request.fmt is ApiFormat.ANTHROPIC:
                request.hub = request.body
            else:
                request.hub = FORMATS[request.fmt].to_hub(
                    request, upstream_model=deployment.model, default_max_tokens=self.h.default_max_tokens
                )
        return request.hub

    # --- answers ------------------------------------------------------------------------------

    def _response_headers(self, response: UpstreamResponse | None) -> list[tuple[bytes, bytes]]:
        plan = self.plan
        deployment = self.deployment
        ours = quota_headers(self.grant.quota, self.fmt)
        out = _passed_upstream_headers(response.headers, ours) if response is not None else []
        out += ours
        out.append((b"x-keystile-request-id", self.request_id.encode()))
        if plan is not None:
            out.append((b"x-keystile-model-group", plan.group_name.encode()))
            out.append((b"x-keystile-attempts", str(plan.attempts).encode()))
        if deployment is not None:
            out.append((b"x-keystile-deployment", deployment.id.encode()))
        for warning in self.grant.warnings:
            out.append((b"x-keystile-budget-warning", warning.encode()))
        return out

    def _overhead_header(self) -> tuple[bytes, bytes]:
        overhead = perf_counter() - self.t0 - self.upstream_wait
        return (b"x-keystile-overhead-ms", b"%.3f" % (overhead * 1000))

    async def _relay_body(self, response: UpstreamResponse, wire: ApiFormat, asked: float) -> None:
        try:
            data = await response.read()
        except UpstreamError as exc:
            self.upstream_wait += perf_counter() - asked
            raise _RetryableBodyFailure(_upstream_error(exc, self.deployment), received=True) from None
        finally:
            await response.aclose()
        latency = perf_counter() - asked
        self.upstream_wait += latency
        operation = self.endpoint.operation
        try:
            obj = read_answer(data, response.status, response.header(b"content-type"), wire)
        except UnreadableAnswer as error:
            # A 502 for the client. The charge: the usage the upstream still reported in the body;
            # failing that, an estimate if it was the model's own (broken) JSON; nothing for a
            # page someone else put in its place (providers/answer.py).
            if error.usage is not None:
                self.usage = error.usage
            elif error.from_model and operation is Operation.GENERATE:
                self.usage = usage_of_cut_stream(Usage(), 1, self._estimate_input)
            self._attempt_failed(self.deployment, error.message, type(error).__name__)  # type: ignore[arg-type]
            self.plan.failed()  # type: ignore[union-attr]  # counts against the deployment; not retried: it may have run
            raise
        generation = operation is Operation.GENERATE
        if operation is not Operation.COUNT_TOKENS:
            self.usage = FORMATS[wire].usage(obj)
        # Only generations feed the latency average: a token count or an embedding is not comparable.
        self._served(latency if generation else None, self.usage.total_tokens)
        if wire is not self.fmt and operation is not Operation.EMBEDDINGS and not (wire in ANTHROPIC_FAMILY and self.fmt in ANTHROPIC_FAMILY):
            data = self._translate_response(obj, wire)  # (Messages answers are the same in Bedrock's and Vertex's envelopes)
        if self.gw.settings.spend.log_content:
            self.response_content = data[:_MAX_CONTENT_LOG].decode("utf-8", "replace")
        self.status = response.status
        headers = [JSON_TYPE, *self._response_headers(response), self._overhead_header()]
        await self.finish()
        await send_bytes(self.send, response.status, data, headers)

    def _translate_response(self, obj: dict, wire: ApiFormat) -> bytes:
        upstream, client = FORMATS[wire], FORMATS[self.fmt]
        try:
            if self.endpoint.operation is Operation.COUNT_TOKENS:
                return orjson.dumps(client.count_from_hub(upstream.count_to_hub(obj)))
            hub = upstream.response_to_hub(obj, model=self.deployment.model)  # type: ignore[union-attr]
            return orjson.dumps(client.response_from_hub(hub, self.request))
        except GatewayError as exc:
            raise GatewayError(ErrorKind.UPSTREAM_ERROR, f"The upstream answered with a response keystile could not read: {exc}") from None

    async def _relay_stream(self, response: UpstreamResponse, wire: ApiFormat, asked: float) -> None:
        relay = make_relay(self.request, wire, self.deployment.model)  # type: ignore[union-attr]
        self.relay = relay
        send = self.send
        headers = [*STREAM_HEADERS.get(self.fmt, SSE_HEADERS), *self._response_headers(response)]
        iterator = response.__aiter__()
        # The first chunk is awaited before answering, so a failure here can still be retried.
        try:
            first = await iterator.__anext__()
        except StopAsyncIteration:
            first = b""
        except UpstreamError as exc:
            await response.aclose()
            self.upstream_wait += perf_counter() - asked
            raise _RetryableBodyFailure(_upstream_error(exc, self.deployment), received=True) from None
        latency = perf_counter() - asked
        self.upstream_wait += latency
        page = stream_page(response.status, response.header(b"content-type"), first)
        if page is not None:  # a proxy's login page, say: nothing reached the client, another attempt may do better
            await response.aclose()
            self.relay = None
            raise _RetryableBodyFailure(page)
        out = relay.feed(first) if first else relay.end()
        if relay.failed:
            # Failed in its first chunk (an in-band overloaded_error right after the 200, an
            # empty or malformed stream): nothing has reached the client, so it may be retried.
            retry = _stream_start_failure(first, wire)
            if retry is not None:
                await response.aclose()
                self.relay = None
                raise _RetryableBodyFailure(failure=retry)
        self._served(latency, None)
        self.status = 200
        headers.append(self._overhead_header())
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        self.response_started = True
        content = [] if self.gw.settings.spend.log_content else None
        try:
            if out:
                if content is not None:
                    content.append(out)
                await send({"type": "http.response.body", "body": out, "more_body": True})
                out = b""
            while first:  # (an empty stream has ended above)
                waited = perf_counter()
                try:
                    chunk = await iterator.__anext__()
                except StopAsyncIteration:
                    self.upstream_wait += perf_counter() - waited
                    out = relay.end()
                    break
                self.upstream_wait += perf_counter() - waited
                out = relay.feed(chunk)
                if out:
                    if content is not None and sum(map(len, content)) < _MAX_CONTENT_LOG:
                        content.append(out)
                    await send({"type": "http.response.body", "body": out, "more_body": True})
        except UpstreamError as exc:
            out = relay.fail(_upstream_error(exc, self.deployment).status, _describe_stream_failure(exc))
        finally:
            await response.aclose()
        if relay.failed:
            self.status = relay.error_status or ErrorKind.UPSTREAM_ERROR.status
            self.plan.failed()  # type: ignore[union-attr]  # counts against the deployment; too late to retry
        else:
            self.plan.done(relay.usage.total_tokens)  # type: ignore[union-attr]
        if content is not None:
            self.response_content = b"".join(content).decode("utf-8", "replace")
        await self.finish()
        await send({"type": "http.response.body", "body": out, "more_body": False})

    async def _estimate_tokens(self) -> None:
        count = self._estimate_input()
        self.status = 200
        headers = [JSON_TYPE, (b"x-keystile-estimate", b"true"), *self._response_headers(None), self._overhead_header()]
        await self.finish()
        await send_bytes(self.send, 200, orjson.dumps(FORMATS[self.fmt].count_from_hub(count)), headers)

    async def _give_up(self, failure: UpstreamFailure) -> None:
        """Nothing worked: tell the client what the last attempt saw, in its format."""
        headers = [JSON_TYPE, *self._response_headers(None), self._overhead_header()]
        if failure.error is not None:
            error = failure.error
            if len(self.causes) > 1:
                error = GatewayError(
                    error.kind, f"All {len(self.causes)} attempts failed: {'; '.join(self.causes)}.", status=error.status
                )
            self.status = error.status
            self.error = error.message
            await self.finish()
            await send_error(self.send, self.fmt, error, headers[1:])
            return
        if failure.status:
            self.status = failure.status
            content_type = _header(failure.headers or (), b"content-type")
            body = error_page(failure.body, failure.status, content_type, self.fmt) or translate_error_body(
                failure.body, failure.status, upstream=failure.wire, client=self.fmt
            )
            passed = [(n, v) for n, v in failure.headers or () if n in _PASSED_HEADERS]
            passed += error_headers(self.fmt, failure.status, failure.headers if failure.wire is self.fmt else None)
            await self.finish()
            await send_bytes(self.send, failure.status, body, [*headers, *passed])
            return
        error = GatewayError(ErrorKind.UNAVAILABLE, f"No deployment of model {quote(self.request.model)} is available right now.")
        self.status = error.status
        await self.finish()
        await send_error(self.send, self.fmt, error, headers[1:])

    async def fail(self, error: GatewayError) -> None:
        """A refusal raised after admission (unsupported operation, unreadable upstream answer)."""
        self.status = error.status
        self.error = error.message
        await self.finish()
        if self.response_started:
            if self.relay is not None:
                await self.send({"type": "http.response.body", "body": self.relay.fail(error.status, error.message), "more_body": False})
            return
        await send_error(self.send, self.fmt, error, self._response_headers(None))

    def _served(self, latency: float | None, tokens: int | None) -> None:
        """The deployment answered well; ``tokens`` None: the answer is still streaming."""
        plan = self.plan
        if plan is None:
            return
        plan.answered(latency)
        if tokens is not None:
            plan.done(tokens)
        if plan.fallback:
            self.gw.metrics.fallbacks.labels(plan.requested, plan.group_name).inc()

    def release(self) -> None:
        """Close the route plan's attempt if one is still open (client gone, refusal, crash)."""
        if self.plan is not None:
            self.plan.release()

    def client_gone(self) -> None:
        """The client disconnected: the upstream call was cancelled (its connection aborted)."""
        self.status = 499

    async def cut_off_by_shutdown(self) -> None:
        """The server is stopping and this request ran past its grace period: the client gets a
        503 in its format (in-band if the answer is streaming) and the request is charged for
        what it used, like any stream cut short."""
        error = GatewayError(ErrorKind.UNAVAILABLE, "keystile is shutting down; this answer was cut short. Retry the request.")
        try:
            await self.fail(error)
        except Exception:  # the connection may already be going away
            self.status = error.status

    # --- accounting --------------------------------------------------------------------------

    async def finish(self) -> None:
        """Release the grant and account, once — just before the last byte goes to the client.

        Doing it before the final send means a client that fires its next request the
        moment this one ends finds its parallel slot free and its spend already counted.
        The disconnect watch stops here too: from now on the answer is complete as far as
        keystile is concerned (servers report the end of a request to a waiting ``receive`` as a disconnect).
        """
        if self.finished:
            return
        self.finished = True
        self.watch.stop()
        authorizer = self.gw.authorizer
        if authorizer.in_memory:
            authorizer.release_now(self.grant)
        else:
            await authorizer.release(self.grant)
        try:
            await self._account()
        finally:
            if self.grant.holding:  # accounting failed before charging: its reservation must not stay held
                await authorizer.unreserve(self.grant)

    async def _account(self) -> None:
        relay = self.relay
        if relay is not None and self.response_started:
            # Whatever the upstream reported, filled in where it reported nothing — a stream cut
            # off before its usage report, or one whose upstream never sends one, is charged an
            # estimate of what it used, never $0.
            self.usage = usage_of_cut_stream(relay.usage, relay.content_events, self._estimate_input)
        elif self.status == 200 and self.accountable and self.usage.total_tokens == 0 and self.endpoint.operation is Operation.GENERATE:
            self.usage = usage_of_cut_stream(self.usage, 1, self._estimate_input)
        gw = self.gw
        elapsed = perf_counter() - self.t0
        gw.metrics.observe_overhead(max(elapsed - self.upstream_wait, 0.0))
        plan = self.plan
        if plan is not None and plan.lost_attempts:
            # Attempts the upstream received but whose usage keystile never saw (timed out, broke
            # before answering): charged at least their input, estimated.
            usage = self.usage
            self.usage = Usage(
                usage.input_tokens + plan.lost_attempts * self._estimate_input(),
                usage.output_tokens,
                usage.cache_read_tokens,
                usage.cache_write_tokens,
            )
        cost = 0.0
        if self.accountable:
            cost = await self._record(elapsed)
        if relay is not None and relay.failed and self.error is None:
            self.error = f"the stream ended with an in-band error ({relay.error_status or 502})"
        usage = self.usage
        gw.access_log.request(
            request_id=self.request_id,
            route=self.route,
            status=self.status or 500,
            latency=elapsed,
            key_alias=self.identity.alias,
            key_hash=self.identity.token_hash,
            model=self.request.model,
            group=plan.group_name if plan is not None else None,
            deployment=self.deployment.id if self.deployment is not None else None,
            attempts=plan.attempts if plan is not None else 0,
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.output_tokens,
            cost=cost,
            stream=self.request.stream,
            error=self.error,
        )

    async def _record(self, elapsed: float) -> float:
        gw = self.gw
        plan = self.plan
        request_content = None
        if gw.settings.spend.log_content:
            request_content = self.request.raw[:_MAX_CONTENT_LOG].decode("utf-8", "replace")
        return await gw.accountant.record(
            self.identity,
            self.grant,
            self.deployment,
            self.usage,
            request_id=self.request_id,
            requested_model=self.request.model,
            group=plan.group_name if plan is not None else None,
            status=self.status or 500,
            started=self.started,
            latency=elapsed,
            stream=self.request.stream,
            attempts=plan.attempts if plan is not None else 0,
            request_content=request_content,
            response_content=self.response_content,
            call_type=call_type_of(self.fmt, self.endpoint.operation),
            tags=request_tags(self.seen, self.request.body),
        )

    def _estimate_input(self) -> int:
        """Input tokens estimated locally from the request (as Anthropic Messages)."""
        try:
            hub = self.request.hub
            if hub is None:
                hub = self.request.body if self.fmt is ApiFormat.ANTHROPIC else self._hub_for_estimate()
            return estimate_input_tokens(hub)
        except GatewayError:
            return max(1, len(self.request.raw) // 4)

    def _hub_for_estimate(self) -> dict:
        model = self.deployment.model if self.deployment is not None else self.request.model
        return FORMATS[self.fmt].to_hub(self.request, upstream_model=model, default_max_tokens=self.h.default_max_tokens)


class _RetryableBodyFailure(Exception):
    """The upstream failed after its status line but before anything reached the client."""

    def __init__(self, error: GatewayError | None = None, *, failure: UpstreamFailure | None = None, received: bool = False) -> None:
        self.failure = failure or UpstreamFailure(error=error)
        self.received = received
        """The upstream had the request and its answer broke before its usage: it may bill it."""


def _stream_start_failure(first: bytes, wire: ApiFormat) -> UpstreamFailure | None:
    """What a stream that failed in its first chunk reported, if another attempt may help.

    An upstream's own in-band error keeps its status and body (passed on unmodified if the
    last attempt ends the same way); a client error (None) is relayed in-band as it is.
    """
    parser = PARSERS[wire]()
    try:
        events = parser.feed(first) + parser.close()
    except ValueError:  # a malformed frame (Bedrock's event stream)
        events = []
    for event in events:
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(data, dict) or not ("error" in data or data.get("type") in ("error", "response.failed")):
            continue
        kind = error_kind_of(data)
        status = kind.status if kind is not None else ErrorKind.UPSTREAM_ERROR.status
        if status not in RETRYABLE_STATUS:
            return None
        return UpstreamFailure(status=status, body=event.data, wire=EVENT_FORMAT.get(wire, wire))
    return UpstreamFailure(error=GatewayError(ErrorKind.UPSTREAM_ERROR, "The upstream's stream broke before its first event."))


def _passed_upstream_headers(upstream: list[tuple[bytes, bytes]], ours: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream's request ids and retry hints, and its rate-limit headers unless keystile sends its own of that name."""
    out = []
    our_names: set[bytes] | None = None  # built only if the upstream sends rate-limit headers
    for name, value in upstream:
        if name in _PASSED_HEADERS:
            out.append((name, value))
        elif name.startswith(_RATELIMIT_PREFIXES):
            if our_names is None:
                our_names = {name for name, _ in ours}
            if name not in our_names:
                out.append((name, value))
    return out


def raise_unsupported(deployment: Deployment, operation: Operation) -> None:
    raise GatewayError(
        ErrorKind.INVALID_REQUEST,
        f"Model {deployment.model_name!r} is served by a {deployment.provider} deployment, which has no {operation.value} API.",
        param="model",
    )


def _header(headers: list[tuple[bytes, bytes]] | tuple[()], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _retry_after(response: UpstreamResponse) -> float | None:
    raw_ms = response.header(b"retry-after-ms")
    if raw_ms is not None:
        try:
            return max(float(raw_ms) / 1000.0, 0.0)
        except ValueError:
            pass
    raw = response.header(b"retry-after")
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        return None  # an HTTP date: rare from LLM APIs; fall back to backoff


def _upstream_error(exc: UpstreamError, deployment: Deployment | None) -> GatewayError:
    where = f" ({deployment.id})" if deployment is not None else ""
    if isinstance(exc, UpstreamTimeout):
        phase = {"connect": "connecting to", "first_byte": "waiting for", "idle": "streaming from"}.get(exc.phase, "waiting for")
        return GatewayError(ErrorKind.UPSTREAM_TIMEOUT, f"Timed out {phase} the upstream{where}.")
    if isinstance(exc, UpstreamConnectError):
        # The reason (refused, TLS verification, a proxy's 407) is for the operator's log, not the client.
        return GatewayError(ErrorKind.UPSTREAM_ERROR, f"Could not connect to the upstream{where}.")
    if isinstance(exc, UpstreamTooLarge):
        return too_large_error(exc, where)
    return GatewayError(ErrorKind.UPSTREAM_ERROR, f"The upstream connection failed{where}: {type(exc).__name__}.")


def _describe_exception(exc: UpstreamError) -> str:
    """A short cause for the log: the exception's kind and, for timeouts, the phase."""
    if isinstance(exc, UpstreamTimeout):
        return f"timed out ({exc.phase})"
    if isinstance(exc, UpstreamConnectError):
        return f"connection failed ({exc})" if str(exc) else "connection failed"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _describe_stream_failure(exc: UpstreamError) -> str:
    if isinstance(exc, UpstreamTimeout):
        return "The upstream stopped sending events (idle timeout)."
    return "The upstream connection was lost mid-stream."
