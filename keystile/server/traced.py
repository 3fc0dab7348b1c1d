"""The handler's per-request object when tracing is on: notes what the spans need as it goes.

``InferenceHandler`` runs ``_Call`` itself while tracing is off — this module is not even imported
then, so the request path is unchanged. With ``otel.enabled`` it runs ``TracedCall`` instead: the
same object, plus a note of when each upstream attempt began and how it ended, the time of a
stream's first chunk, the cost, and the first and last bytes of the answer (for its model, id and
finish reasons). The spans are written when the handler lets go of the request (``release``, then
its last ``finish``): after the client has its last byte, whatever path the request took.
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import TYPE_CHECKING, Any

from keystile.config.model import Deployment
from keystile.errors import GatewayError
from keystile.server.http import Scope
from keystile.server.inference import Endpoint, _Call
from keystile.tracing.record import AttemptTrace, RequestTrace, answer_facts

if TYPE_CHECKING:
    from keystile.auth import Identity
    from keystile.formats.base import ClientRequest
    from keystile.server.app import Gateway
    from keystile.tracing.spans import Tracing

log = logging.getLogger("keystile.tracing")


class TracedCall(_Call):
    """``_Call`` that also notes attempts, timings, cost and the answer's ends for its spans."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.tracing: "Tracing" = self.h.tracing  # type: ignore[assignment]  # set: this class runs only then
        self.attempt_traces: list[AttemptTrace] = []
        self.attempt_began = 0.0
        self.cost: float | None = None
        self.answer_status = 0
        self.answer_head = b""
        self.answer_tail: list[bytes] = []
        self.letting_go = False
        self.traced = False
        self.client_send = self.send
        self.send = self._send  # every answer goes through here (bodies are noted, not copied)

    # --- what happens while it runs --------------------------------------------------------------

    async def run(self) -> None:
        self.attempt_began = perf_counter()
        await super().run()

    async def _backoff(self, delay: float) -> None:
        await super()._backoff(delay)
        self.attempt_began = perf_counter()  # the next attempt starts now

    def _attempt_failed(self, deployment: Deployment, cause: str, error_type: str) -> None:
        super()._attempt_failed(deployment, cause, error_type)
        self.attempt_traces.append(AttemptTrace(deployment, self.attempt_began, perf_counter(), error_type))

    def _served(self, latency: float | None, tokens: int | None) -> None:
        super()._served(latency, tokens)
        if self.deployment is None:
            return
        now = perf_counter()
        attempt = AttemptTrace(self.deployment, self.attempt_began)
        if tokens is None:  # a stream: it has its first chunk; it ends when the stream does
            attempt.first_chunk = now
        else:
            attempt.end = now
        self.attempt_traces.append(attempt)

    async def _record(self, elapsed: float) -> float:
        self.cost = await super()._record(elapsed)
        return self.cost

    async def _send(self, message: dict) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.answer_status = message["status"]
        elif kind == "http.response.body" and self.answer_status == 200:
            body = message.get("body", b"")
            if body:
                if not self.answer_head:
                    self.answer_head = body
                else:
                    tail = self.answer_tail
                    tail.append(body)
                    if len(tail) > 2:
                        del tail[0]
        await self.client_send(message)

    # --- letting go --------------------------------------------------------------------------------

    def release(self) -> None:
        super().release()
        self.letting_go = True  # the handler's closing finish() comes next

    async def finish(self) -> None:
        await super().finish()
        if self.letting_go and not self.traced:
            self.traced = True
            try:
                self.tracing.emit(self._trace())
            except Exception:  # a span is never worth a failed request
                log.exception("request %s: could not write its span", self.request_id)

    def _trace(self) -> RequestTrace:
        now = perf_counter()
        attempts = self.attempt_traces
        plan = self.plan
        relay = self.relay
        if self.deployment is not None and plan is not None and len(attempts) < plan.attempts:
            # The last attempt ended without a verdict (client gone, an unreadable answer, shutdown).
            attempts.append(AttemptTrace(self.deployment, self.attempt_began, now, str(self.status or 500)))
        if attempts and attempts[-1].error_type is None:
            last = attempts[-1]
            if not last.end:
                last.end = now
            if relay is not None and relay.failed:
                last.error_type = str(relay.error_status or 502)
        identity = self.identity
        key = identity.key
        trace = RequestTrace(
            self.fmt,
            self.endpoint.operation,
            self.route,
            self.started,
            self.t0,
            now,
            self.status or 500,
            requested_model=self.request.model,
            stream=self.request.stream,
            body=self.request.body,
            request_id=self.request_id,
            key_alias=identity.alias,
            user_id=key.user_id if key is not None else None,
            team_id=key.team_id if key is not None else None,
            group=plan.group_name if plan is not None else None,
            deployment=self.deployment,
            attempts=attempts,
            usage=self.usage,
            cost=self.cost,
            traceparent=_header(self.seen, b"traceparent"),
            tracestate=_header(self.seen, b"tracestate"),
        )
        if self.answer_head:
            trace.answer = answer_facts(self.answer_head, self.answer_tail, self.request.stream)
        return trace


def trace_refusal(
    gateway: "Gateway",
    scope: Scope,
    endpoint: Endpoint,
    error: GatewayError,
    identity: "Identity | None",
    request: "ClientRequest | None",
    request_id: str | None,
    started: float,
    t0: float,
) -> None:
    """The span of a request refused before it was admitted (no key, over a limit, bad input)."""
    headers = dict(pair for pair in scope["headers"] if pair[0] in (b"traceparent", b"tracestate"))
    key = identity.key if identity is not None else None
    group = gateway.router.group(request.model) if request is not None else None
    try:
        gateway.tracing.emit(  # type: ignore[union-attr]
            RequestTrace(
                endpoint.client,
                endpoint.operation,
                scope["path"],
                started,
                t0,
                perf_counter(),
                error.status,
                requested_model=request.model if request is not None else endpoint.model,
                stream=request.stream if request is not None else bool(endpoint.stream),
                request_id=request_id,
                key_alias=identity.alias if identity is not None else None,
                user_id=key.user_id if key is not None else None,
                team_id=key.team_id if key is not None else None,
                group=group.name if group is not None else None,
                traceparent=_header(headers, b"traceparent"),
                tracestate=_header(headers, b"tracestate"),
            )
        )
    except Exception:
        log.exception("could not write the span of a refused request")


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    if not value or len(value) > 512:
        return None
    return value.decode("latin-1")
