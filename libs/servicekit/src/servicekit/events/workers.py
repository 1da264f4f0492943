"""The event workers a service runs beside its routes, built from its settings."""

from collections.abc import Mapping

from fastapi import FastAPI

from servicekit.events.consumer import EventConsumer
from servicekit.events.envelope import Handler
from servicekit.events.relay import OutboxRelay
from servicekit.settings import ServiceSettings


def build_relay(app: FastAPI) -> OutboxRelay:
    settings: ServiceSettings = app.state.settings
    return OutboxRelay(
        sessionmaker=app.state.database.sessionmaker,
        redis=app.state.redis,
        stream=settings.EVENT_STREAM,
        name=settings.SERVICE_NAME,
        listen_dsn=app.state.database.dsn,
        wake_on_commit=settings.OUTBOX_WAKE_ON_COMMIT,
        poll_interval=settings.OUTBOX_POLL_INTERVAL,
        connect_timeout=settings.DEPENDENCY_TIMEOUT,
    )


def build_consumer(app: FastAPI, handlers: Mapping[str, Handler]) -> EventConsumer:
    settings: ServiceSettings = app.state.settings
    return EventConsumer(
        group=settings.SERVICE_NAME,
        sessionmaker=app.state.database.sessionmaker,
        redis=app.state.redis,
        handlers=handlers,
        stream=settings.EVENT_STREAM,
        claim_idle_ms=settings.EVENT_CLAIM_IDLE_MS,
        max_attempts=settings.EVENT_MAX_ATTEMPTS,
        # XREADGROUP returns the moment an entry arrives; the block only bounds an idle wait,
        # and must end well within Redis's socket timeout not to look like an outage.
        block_ms=max(1, min(1000, int(settings.DEPENDENCY_TIMEOUT * 500))),
    )
