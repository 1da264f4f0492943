"""W3C trace context through requests and events; spans recorded only when they are exported.

Propagation is always on and costs one header scan per request: an incoming `traceparent`
(sent by a client, passed on by Traefik) is continued, else a trace starts here, so every
log line carries a trace id, and the outbox envelope carries the `traceparent` on to the
consumers. Spans are recorded and exported over OTLP only when OTEL_EXPORTER_OTLP_ENDPOINT
(or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; then asyncpg, redis and httpx calls are
instrumented too. Otherwise no span is recorded and no instrumentation is loaded.
The server span is opened by servicekit's RequestContextMiddleware, not by a middleware
layer of its own, so an untraced request pays for no extra layer.
"""

import os
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode
from starlette.types import Scope

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from servicekit.events.envelope import Envelope

TRACEPARENT_HEADER = "traceparent"
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_OTLP_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

_tracer: trace.Tracer | None = None


def is_recording() -> bool:
    return _tracer is not None


def record_with(provider: "TracerProvider | None") -> None:
    """Record spans through `provider` from now on (None: stop); tests pass an in-memory one."""
    global _tracer
    _tracer = None if provider is None else provider.get_tracer("servicekit")


def configure_tracing(service: str) -> None:
    """Export spans over OTLP when the standard variables ask for it; once per process."""
    if _tracer is not None or not any(os.environ.get(name) for name in _OTLP_VARIABLES):
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    # Traefik passes on an unsampled parent (it records no span itself): with the SDK's
    # default sampler, which follows the parent, no service would record either.
    sampler = None if os.environ.get("OTEL_TRACES_SAMPLER") else ALWAYS_ON
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}), sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument()
    RedisInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    record_with(provider)


def parse_traceparent(value: str | None) -> SpanContext | None:
    """The remote parent a `traceparent` names; None when absent or malformed (then ignored)."""
    match = _TRACEPARENT.match(value) if value else None
    if match is None or match[1] == "ff":
        return None
    trace_id, span_id = int(match[2], 16), int(match[3], 16)
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(match[4], 16)))


def current_traceparent() -> str | None:
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    trace_id, span_id = span_context.trace_id, span_context.span_id
    return f"00-{trace_id:032x}-{span_id:016x}-{span_context.trace_flags:02x}"


def current_trace_id() -> str | None:
    span_context = trace.get_current_span().get_span_context()
    return f"{span_context.trace_id:032x}" if span_context.is_valid else None


def _new_root() -> SpanContext:
    # Not secrets: the SDK's own id generator uses the same generator.
    trace_id, span_id = random.getrandbits(128), random.getrandbits(64)  # noqa: S311
    return SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(0))


def _incoming(scope: Scope) -> SpanContext | None:
    for name, value in scope["headers"]:
        if name == b"traceparent":
            return parse_traceparent(value.decode("latin-1").strip().lower())
    return None


def _start(
    name: str,
    parent: SpanContext | None,
    kind: SpanKind,
    attributes: dict[str, str],
    links: list[Link] | None = None,
) -> Span:
    if _tracer is None:
        return NonRecordingSpan(parent or _new_root())
    parent_context = trace.set_span_in_context(NonRecordingSpan(parent)) if parent else Context()
    return _tracer.start_span(
        name, context=parent_context, kind=kind, attributes=attributes, links=links
    )


def enter_request(scope: Scope) -> tuple[object, Span]:
    """Continue the request's trace (or start one); call `exit_request` with what it returns."""
    method = scope.get("method", "GET")  # a WebSocket handshake has none
    span = _start(
        method,
        _incoming(scope),
        SpanKind.SERVER,
        {"http.request.method": method, "url.path": scope["path"]},
    )
    return context.attach(trace.set_span_in_context(span)), span


def exit_request(token: object, span: Span, scope: Scope, *, route: str, status: int) -> None:
    if span.is_recording():
        span.update_name(f"{scope.get('method', 'GET')} {route}")
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()
    context.detach(token)  # type: ignore[arg-type]


@contextmanager
def _current(span: Span) -> Iterator[Span]:
    token = context.attach(trace.set_span_in_context(span))
    try:
        yield span
    except Exception as exc:
        if span.is_recording():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR))
        raise
    finally:
        if span.is_recording():
            span.end()
        context.detach(token)


@contextmanager
def publishing(envelope: "Envelope") -> Iterator["Envelope"]:
    """The relay's producer span for one event; yields the envelope carrying that span."""
    attributes = {
        "messaging.system": "redis",
        "messaging.operation.type": "publish",
        "messaging.message.id": str(envelope.id),
    }
    parent = parse_traceparent(envelope.traceparent)
    with _current(_start(f"publish {envelope.type}", parent, SpanKind.PRODUCER, attributes)):
        yield envelope.model_copy(update={"traceparent": current_traceparent()})


@contextmanager
def consuming(envelope: "Envelope", group: str) -> Iterator[None]:
    """The consumer's span: in the producer's trace, and linked to the producer's span."""
    attributes = {
        "messaging.system": "redis",
        "messaging.operation.type": "process",
        "messaging.message.id": str(envelope.id),
        "messaging.consumer.group.name": group,
    }
    parent = parse_traceparent(envelope.traceparent)
    links = [Link(parent)] if parent else None
    with _current(_start(f"process {envelope.type}", parent, SpanKind.CONSUMER, attributes, links)):
        yield
