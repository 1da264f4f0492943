"""W3C trace context: continued by every request, carried by events, linked by consumers."""

import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import httpx
import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from redis.asyncio import Redis

from devstack.servers import PostgresServer, RedisServer
from servicekit import tracing
from servicekit.db import Database
from servicekit.events.consumer import EventConsumer
from servicekit.events.envelope import Envelope
from servicekit.events.outbox import add_event, register_outbox
from servicekit.events.processed import register_processed_events
from servicekit.events.relay import OutboxRelay
from servicekit.logging import JsonFormatter
from servicekit.redis import create_redis

STREAM = "trace-events"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
#: Sampled, as a client may send it; Traefik passes on its own, unsampled (flags 00).
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
UNSAMPLED = f"00-{TRACE_ID}-{PARENT_ID}-00"


class JsonLines(logging.Handler):
    """Formats at emit time, inside the request's context, as the real handler does."""

    def __init__(self) -> None:
        super().__init__()
        self.formatter_ = JsonFormatter("demo")
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.formatter_.format(record)))


@pytest.fixture
def log_lines() -> Iterator[list[dict[str, object]]]:
    handler = JsonLines()
    logging.getLogger().addHandler(handler)
    yield handler.lines
    logging.getLogger().removeHandler(handler)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.record_with(provider)
    yield exporter
    tracing.record_with(None)


def access_line(lines: list[dict[str, object]], path: str) -> dict[str, object]:
    return next(line for line in lines if line["event"] == "request" and line["path"] == path)


async def test_a_request_continues_the_callers_trace_in_its_log_line(
    client: httpx.AsyncClient, log_lines: list[dict[str, object]]
) -> None:
    response = await client.get("/api/v1/demo/health", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    line = access_line(log_lines, "/api/v1/demo/health")
    assert line["trace_id"] == TRACE_ID
    assert line["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        f"00-{'0' * 32}-{PARENT_ID}-01",
        f"ff-{TRACE_ID}-{PARENT_ID}-01",
        f"00-{TRACE_ID}-{'0' * 16}-01",
    ],
)
async def test_a_malformed_traceparent_starts_a_fresh_trace(
    client: httpx.AsyncClient, log_lines: list[dict[str, object]], traceparent: str
) -> None:
    response = await client.get("/api/v1/demo/health", headers={"traceparent": traceparent})
    assert response.status_code == 200
    trace_id = access_line(log_lines, "/api/v1/demo/health")["trace_id"]
    assert isinstance(trace_id, str) and len(trace_id) == 32
    assert trace_id not in (TRACE_ID, "0" * 32)


async def test_a_request_without_traceparent_gets_a_trace_id_of_its_own(
    client: httpx.AsyncClient, log_lines: list[dict[str, object]]
) -> None:
    await client.get("/api/v1/demo/health")
    await client.get("/api/v1/demo/health")
    ids = [line["trace_id"] for line in log_lines if line["event"] == "request"]
    assert len(ids) == 2 and ids[0] != ids[1] and all(ids)


async def test_the_server_span_is_a_child_of_the_callers_span(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    await client.get("/api/v1/demo/things/lamp", headers={"traceparent": TRACEPARENT})
    (span,) = [span for span in spans.get_finished_spans() if span.kind == SpanKind.SERVER]
    assert span.name == "GET /api/v1/demo/things/{name}"
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT_ID
    assert span.attributes is not None and span.attributes["http.response.status_code"] == 404


# ---- events -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def database(postgres: PostgresServer) -> AsyncIterator[Database]:
    database = Database(postgres.dsn().replace("postgresql://", "postgresql+asyncpg://"))
    schema = sa.MetaData()
    tables = [register_outbox(schema), register_processed_events(schema)]
    async with database.engine.begin() as connection:
        await connection.run_sync(schema.drop_all, tables=tables)
        await connection.run_sync(schema.create_all, tables=tables)
    yield database
    async with database.engine.begin() as connection:
        await connection.run_sync(schema.drop_all, tables=tables)
    await database.dispose()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    if not redis_server.is_running():
        redis_server.start()
    client = create_redis(redis_server.url, timeout=1.0)
    await client.delete(STREAM, f"{STREAM}.dead-letter")
    yield client
    await client.aclose()


async def _note(session: object, envelope: Envelope) -> None:
    logging.getLogger("demo.handler").info("handling", extra={"note": envelope.data["note"]})


async def _relay_and_consume(database: Database, redis: Redis) -> None:
    """Stage an event inside a request carrying TRACEPARENT, publish it, consume it."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/things",
        "headers": [(b"traceparent", TRACEPARENT.encode())],
    }
    token, span = tracing.enter_request(scope)
    try:
        async with database.sessionmaker() as session:
            add_event(
                session, type="demo.traced", producer="demo", data={"note": str(uuid.uuid4())}
            )
            await session.commit()
    finally:
        tracing.exit_request(token, span, scope, route="/things", status=201)
    relay = OutboxRelay(
        sessionmaker=database.sessionmaker, redis=redis, stream=STREAM, name="trace"
    )
    assert await relay.publish_batch() == 1
    consumer = EventConsumer(
        group="tracer", sessionmaker=database.sessionmaker, redis=redis,
        handlers={"demo.traced": _note}, stream=STREAM, block_ms=100,
    )  # fmt: skip
    await consumer.ensure_group()
    assert await consumer.consume_new() == 1


async def test_the_trace_id_follows_an_event_into_the_relay_and_consumer_log_lines(
    database: Database, redis: Redis, log_lines: list[dict[str, object]]
) -> None:
    await _relay_and_consume(database, redis)
    by_event = {str(line["event"]): line for line in log_lines}
    for event in ("event relayed", "handling", "event handled"):
        assert by_event[event]["trace_id"] == TRACE_ID, event


async def test_the_consumer_span_is_linked_to_the_producer_span(
    database: Database, redis: Redis, spans: InMemorySpanExporter
) -> None:
    await _relay_and_consume(database, redis)
    finished: dict[SpanKind, ReadableSpan] = {
        span.kind: span for span in spans.get_finished_spans()
    }
    server, producer, consumer = (
        finished[kind] for kind in (SpanKind.SERVER, SpanKind.PRODUCER, SpanKind.CONSUMER)
    )
    assert producer.name == "publish demo.traced" and consumer.name == "process demo.traced"
    assert {f"{span.context.trace_id:032x}" for span in (server, producer, consumer)} == {TRACE_ID}
    assert producer.parent is not None and producer.parent.span_id == server.context.span_id
    assert [link.context.span_id for link in consumer.links] == [producer.context.span_id]
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id


# ---- export -----------------------------------------------------------------------------------

EXPORTING_PROCESS = """
from opentelemetry import trace
from servicekit import tracing
tracing.configure_tracing("demo")
scope = {"type": "http", "method": "GET", "path": "/x", "headers": [(b"traceparent", TRACEPARENT)]}
token, span = tracing.enter_request(scope)
tracing.exit_request(token, span, scope, route="/x", status=200)
trace.get_tracer_provider().force_flush()
"""


class Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that keeps what it is sent."""

    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:  # noqa: N802 - the handler's protocol
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_spans_are_exported_over_otlp_when_an_endpoint_is_set() -> None:
    server = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
        }
        code = EXPORTING_PROCESS.replace("TRACEPARENT", repr(UNSAMPLED.encode()))
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)  # noqa: S603
    finally:
        server.shutdown()
    (path, body), *_ = Collector.received
    assert path == "/v1/traces"
    # Sampled although Traefik's parent is not: the span with the caller's trace id was sent.
    assert bytes.fromhex(TRACE_ID) in body and b"GET /x" in body


def test_nothing_is_recorded_without_an_endpoint() -> None:
    code = "from servicekit import tracing\n"
    code += "tracing.configure_tracing('demo')\nprint(tracing.is_recording())"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    argv = [sys.executable, "-c", code]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)  # noqa: S603
    assert result.stdout.strip() == "False"
