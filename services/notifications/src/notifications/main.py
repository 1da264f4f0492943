"""The notifications service's ASGI app: `uvicorn notifications.main:app`."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from notifications import push
from notifications.events import HANDLERS
from notifications.mailer import Mailer
from notifications.routes import router
from notifications.settings import settings
from servicekit.app import create_app
from servicekit.redis import create_redis


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Publish pushes after commit, fan them out to local sockets, and send mail."""
    publisher = push.Publisher(app.state.redis)
    push.install(publisher)
    # The hub's subscription gets a connection of its own: it is held open for good.
    hub_redis = create_redis(settings.REDIS_URL, timeout=settings.DEPENDENCY_TIMEOUT)
    app.state.hub = push.Hub(hub_redis, queue_size=settings.WS_QUEUE_SIZE)
    app.state.hub.start()
    mailer_task = None
    if settings.RUN_MAILER:
        mailer = Mailer(settings, app.state.database.sessionmaker)
        mailer_task = asyncio.create_task(mailer.run(), name="notifications-mailer")
    try:
        yield
    finally:
        if mailer_task is not None:
            mailer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await mailer_task
        await app.state.hub.stop()
        await hub_redis.aclose()
        await publisher.aclose()
        push.install(None)


app = create_app(
    settings,
    routers=[router],
    title="Notifications service",
    description=(
        "In-app notifications, WebSocket push and outgoing mail. The stream is at "
        '`WS /api/v1/notifications/ws`: send `{"token": "<access token>"}` first.'
    ),
    lifespan=lifespan,
    event_handlers=HANDLERS,
)
