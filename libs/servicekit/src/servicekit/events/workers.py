"""Background workers a service runs beside its routes: the outbox relay and the consumer."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from servicekit.events.envelope import Handler
from servicekit.settings import ServiceSettings

if TYPE_CHECKING:
    from servicekit.events.consumer import EventConsumer
    from servicekit.events.relay import OutboxRelay

logger = logging.getLogger(__name__)

Worker = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


# The relay and consumer modules are imported on use: importing them registers their
# tables, and a service's metadata must hold only the tables it migrates.


def build_relay(app: FastAPI) -> "OutboxRelay":
    from servicekit.events.relay import OutboxRelay

    settings: ServiceSettings = app.state.settings
    return OutboxRelay(
        sessionmaker=app.state.database.sessionmaker,
        redis=app.state.redis,
        stream=settings.EVENT_STREAM,
        name=settings.SERVICE_NAME,
        poll_interval=settings.OUTBOX_POLL_INTERVAL,
    )


def build_consumer(app: FastAPI, handlers: Mapping[str, Handler]) -> "EventConsumer":
    from servicekit.events.consumer import EventConsumer

    settings: ServiceSettings = app.state.settings
    return EventConsumer(
        group=settings.SERVICE_NAME,
        sessionmaker=app.state.database.sessionmaker,
        redis=app.state.redis,
        handlers=handlers,
        stream=settings.EVENT_STREAM,
        claim_idle_ms=settings.EVENT_CLAIM_IDLE_MS,
        max_attempts=settings.EVENT_MAX_ATTEMPTS,
    )


async def sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    """Pause a worker loop, waking at once when the service shuts down."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


@contextlib.asynccontextmanager
async def running(*workers: Worker) -> AsyncIterator[None]:
    """Run workers for the span of the block; on exit, ask them to stop, then cancel."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = [asyncio.create_task(worker(stop)) for worker in workers]
    try:
        yield
    finally:
        stop.set()
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:
                task.cancel()
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    logger.error("worker crashed", exc_info=task.exception())
