"""Prometheus metrics every service exports, on a port of their own that no gateway routes to.

Counters and histograms are updated where things happen (one dict lookup and two additions
per request); what lives in PostgreSQL or Redis (the outbox, consumer groups, dead letters)
is sampled by a background worker, and the database pools are read at scrape time.
The service port never answers /metrics: only the metrics port does, and compose does not
publish it, so only the operator's Prometheus on the inner network reaches it.
"""

import asyncio
import logging
from collections.abc import Collection
from threading import Event, Lock, Thread
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from redis.asyncio import Redis
from starlette.types import Scope

from servicekit.background import sleep_unless_stopped
from servicekit.settings import ServiceSettings

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from fastapi import FastAPI

    from servicekit.background import Worker
    from servicekit.db import Database

logger = logging.getLogger(__name__)

# A `_created` gauge beside every counter and histogram would double the series for nothing
# the dashboard or the alerts use.
disable_created_metrics()

# ---- requests ---------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "http_requests", "Requests answered, by route template, method and status.",
    ["route", "method", "status"],
)  # fmt: skip
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds", "Time to answer a request, by route template and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)  # fmt: skip

#: What a path no route matched is counted under: raw paths would let a client mint series.
UNMATCHED_ROUTE = "unmatched"
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

# ---- events -----------------------------------------------------------------------------------
OUTBOX_WAITING = Gauge("outbox_events_waiting", "Outbox rows not yet published.")
OUTBOX_OLDEST_AGE = Gauge(
    "outbox_oldest_event_age_seconds", "Age of the oldest unpublished outbox row (0 when none)."
)
EVENTS_RELAYED = Counter("events_relayed", "Events the outbox relay published.", ["type"])
CONSUMER_PENDING = Gauge(
    "event_consumer_pending", "Events delivered to the group, not yet acknowledged.", ["group"]
)
CONSUMER_LAG = Gauge(
    "event_consumer_lag", "Events in the stream the group has not read.", ["group"]
)
EVENTS_DEAD_LETTERED = Counter(
    "events_dead_lettered", "Events this consumer parked in the dead-letter stream.", ["group"]
)
DEAD_LETTERS = Gauge("event_dead_letters", "Entries in the dead-letter stream.")
HANDLER_FAILURES = Counter(
    "event_handler_failures", "Failed attempts of an event handler.", ["group", "type"]
)

# ---- tokens and the database ------------------------------------------------------------------
TOKEN_VERIFICATIONS = Counter(
    "token_verifications", "Access token verifications, by result.", ["result"]
)
REVOCATION_CHECK_FAILURES = Counter(
    "token_revocation_check_failures", "Revocation checks that could not ask Redis."
)
DB_POOL_IN_USE = Gauge(
    "db_pool_connections_in_use", "Database connections checked out, by pool.", ["pool"]
)


def route_template(scope: Scope) -> str:
    """The matched route's full template (`/api/v1/items/{item_id}`), left on the scope by
    routing: FastAPI's effective route (an included router's route with its prefix), else
    Starlette's route (the app's own, such as the docs)."""
    effective = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(effective, "path_format", None) or getattr(scope.get("route"), "path", None)
    return template or UNMATCHED_ROUTE


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    # Bounded before it is a key: a client choosing methods must not grow the cache.
    method = method if method in _KNOWN_METHODS else "OTHER"
    key = (route, method, status)
    children = _children.get(key)
    if children is None:
        children = (
            HTTP_REQUESTS.labels(route, method, str(status)),
            HTTP_REQUEST_DURATION.labels(route, method),
        )
        _children[key] = children
    children[0].inc()
    children[1].observe(seconds)


def track_pools(database: "Database") -> None:
    """Read at scrape time: the write engine's and the read pool's checked-out connections."""
    DB_POOL_IN_USE.labels("write").set_function(lambda: database.engine.pool.checkedout())  # type: ignore[attr-defined]
    DB_POOL_IN_USE.labels("read").set_function(lambda: _read_pool_in_use(database))


def _read_pool_in_use(database: "Database") -> float:
    pool = database._reads  # noqa: SLF001 - None until opened, and the property would raise
    return 0 if pool is None else pool.get_size() - pool.get_idle_size()


class MetricsServer:
    """prometheus_client's own HTTP server, in a thread, on the metrics port.

    A process that replaces another (a reload, a restart) may find the port still held while
    its predecessor finishes its requests: it keeps trying in the background rather than
    fail to start, and serves as soon as the port is free.
    """

    def __init__(self, host: str, port: int, *, retry_every: float = 0.5) -> None:
        self.host, self.port, self.retry_every = host, port, retry_every
        self._server: WSGIServer | None = None
        self._stopped = Event()
        self._lock = Lock()

    def start(self) -> None:
        if not self._try_bind():
            logger.warning("metrics port busy; retrying", extra={"port": self.port})
            Thread(target=self._bind_when_free, name="metrics-bind", daemon=True).start()

    def _try_bind(self) -> bool:
        with self._lock:
            if self._stopped.is_set():
                return True
            try:
                self._server, _ = start_http_server(self.port, addr=self.host)
            except OSError:
                return False
            return True

    def _bind_when_free(self) -> None:
        while not self._stopped.wait(self.retry_every) and not self._try_bind():
            pass

    def stop(self) -> None:
        with self._lock:
            self._stopped.set()
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()


OUTBOX_QUERY = (
    "SELECT count(*), coalesce(extract(epoch FROM now() - min(occurred_at)), 0)"
    " FROM outbox_event WHERE published_at IS NULL"
)


class PipelineSampler:
    """Every `interval` seconds, sets the gauges of what waits in the outbox and the stream."""

    def __init__(
        self,
        *,
        database: "Database",
        redis: Redis,
        stream: str,
        group: str | None,
        samples_outbox: bool,
        interval: float,
    ) -> None:
        self.database, self.redis, self.stream, self.group = database, redis, stream, group
        self.samples_outbox, self.interval = samples_outbox, interval

    async def sample(self) -> None:
        if self.samples_outbox:
            row = await self.database.reads.fetchrow(OUTBOX_QUERY)
            assert row is not None  # noqa: S101 - an aggregate always returns a row
            OUTBOX_WAITING.set(row[0])
            OUTBOX_OLDEST_AGE.set(float(row[1]))
        if self.group is not None:
            for info in await self.redis.xinfo_groups(self.stream):
                if info["name"] == self.group:
                    CONSUMER_PENDING.labels(self.group).set(info["pending"])
                    CONSUMER_LAG.labels(self.group).set(info.get("lag") or 0)
            DEAD_LETTERS.set(await self.redis.xlen(f"{self.stream}.dead-letter"))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sample()
            except Exception as exc:  # noqa: BLE001 - an outage shows as stale gauges, not a crash
                logger.debug("metrics sample failed", extra={"err": str(exc)})
            await sleep_unless_stopped(stop, self.interval)


def revocation_check_failed() -> None:
    REVOCATION_CHECK_FAILURES.inc()
    TOKEN_VERIFICATIONS.labels("unavailable").inc()


def serve_metrics(
    app: "FastAPI",
    *,
    publishes_events: bool,
    handled_types: Collection[str],
    workers: list["Worker"],
) -> MetricsServer | None:
    """Serve this process's metrics on METRICS_PORT, with the pipeline sampled beside."""
    settings: ServiceSettings = app.state.settings
    track_pools(app.state.database)
    # Series exist from the start, at 0: a rate or increase sees the first one, and the
    # dashboard's queries find them before anything happened.
    for result in ("valid", "invalid", "revoked", "unavailable"):
        TOKEN_VERIFICATIONS.labels(result)
    for event_type in handled_types:
        HANDLER_FAILURES.labels(settings.SERVICE_NAME, event_type)
    if handled_types:
        EVENTS_DEAD_LETTERED.labels(settings.SERVICE_NAME)
    if settings.METRICS_PORT is None:
        return None
    sampler = PipelineSampler(
        database=app.state.database,
        redis=app.state.redis,
        stream=settings.EVENT_STREAM,
        group=settings.SERVICE_NAME if handled_types else None,
        samples_outbox=publishes_events,
        interval=settings.METRICS_SAMPLE_INTERVAL,
    )
    workers.append(sampler.run)
    server = MetricsServer(settings.METRICS_HOST, settings.METRICS_PORT)
    server.start()
    return server
