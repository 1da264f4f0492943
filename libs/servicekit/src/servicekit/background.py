"""Background loops a service runs beside its routes: started and stopped together, paused."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)

#: A loop that runs until the event it is given is set.
Worker = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


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
