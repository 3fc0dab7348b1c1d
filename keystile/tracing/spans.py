"""The OpenTelemetry side: keystile's own tracer provider, its OTLP/HTTP exporter, and the spans
of finished requests.

A request's spans are written once it is over, from its ``RequestTrace``, with the start and end
times it recorded: one SERVER span for the request (continuing the client's ``traceparent``) and,
unless ``otel.attempt_spans`` is off, one CLIENT span per upstream attempt under it. Ending a span
only queues it; a ``BatchSpanProcessor`` exports from its own thread, so the event loop never
waits on the collector. The provider is keystile's alone (the global one is left untouched).
"""

from __future__ import annotations

import logging

from keystile import __version__
from keystile.config.model import OtelSettings
from keystile.config.native import OTEL_EXTRA
from keystile.tracing.record import (
    RequestTrace,
    attempt_attributes,
    attempt_span_name,
    request_attributes,
    request_span_name,
    sampling_attributes,
)

try:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as exc:  # the config check reports this first; this is for any other way in
    raise ImportError(f"otel.enabled needs the OpenTelemetry SDK and OTLP exporter: {OTEL_EXTRA} ({exc})") from exc

log = logging.getLogger("keystile.tracing")

_NS = 1_000_000_000


class Tracing:
    """Writes each finished request's spans; ``shutdown`` exports what is still queued."""

    def __init__(self, settings: OtelSettings, processor: SpanProcessor | None = None) -> None:
        """``processor``: where spans go (tests pass one around an in-memory exporter); by default
        a batch processor in front of the OTLP/HTTP exporter ``settings`` describe."""
        resource = Resource.create({"service.name": settings.service_name, "service.version": __version__})
        self.provider = TracerProvider(
            resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sample_rate)), shutdown_on_exit=False
        )
        if processor is None:
            processor = BatchSpanProcessor(otlp_exporter(settings))
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("keystile", __version__)
        self.attempt_spans = settings.attempt_spans
        self.propagator = TraceContextTextMapPropagator()

    def emit(self, trace: RequestTrace) -> None:
        """The request's span and its attempts' spans, each ended at the time it really ended."""
        started_ns = int(trace.started * _NS)

        def at(moment: float) -> int:  # a perf_counter() reading → epoch nanoseconds
            return started_ns + int((moment - trace.t0) * _NS)

        parent = None
        if trace.traceparent:
            carrier = {"traceparent": trace.traceparent}
            if trace.tracestate:
                carrier["tracestate"] = trace.tracestate
            parent = self.propagator.extract(carrier)  # a malformed traceparent starts a new trace
        attributes = request_attributes(trace)
        span = self.tracer.start_span(
            request_span_name(trace), context=parent, kind=SpanKind.SERVER,
            attributes=sampling_attributes(attributes), start_time=started_ns,
        )
        if span.is_recording():
            span.set_attributes(attributes)
            if trace.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            if self.attempt_spans and trace.attempts:
                inside = set_span_in_context(span)
                for number, attempt in enumerate(trace.attempts, 1):
                    attempt_attrs = attempt_attributes(trace, attempt, number)
                    child = self.tracer.start_span(
                        attempt_span_name(trace, attempt), context=inside, kind=SpanKind.CLIENT,
                        attributes=sampling_attributes(attempt_attrs), start_time=at(attempt.start),
                    )
                    child.set_attributes(attempt_attrs)
                    if attempt.error_type is not None:
                        child.set_status(Status(StatusCode.ERROR))
                    child.end(end_time=at(attempt.end or trace.end))
        span.end(end_time=at(trace.end))

    def shutdown(self) -> None:
        """Export the spans still queued (blocking: run it off the event loop)."""
        self.provider.shutdown()


def otlp_exporter(settings: OtelSettings) -> SpanExporter:
    """OTLP over HTTP with protobuf bodies, to the endpoint and with the headers the settings resolved."""
    return OTLPSpanExporter(endpoint=settings.endpoint, headers=dict(settings.headers))
