"""Fixtures for the notifications service's tests.

A fresh migrated database and a private Redis (the shared fixtures), a real SMTP server
(the dev stack's mail sink, read back through its Mailpit-like HTTP API), and a real
uvicorn serving the app for WebSocket tests (httpx's ASGI transport has no WebSockets).
"""

import os

from servicekit_testing import prepare_environment

prepare_environment("notifications")  # before the service is imported: settings read the env
os.environ["RUN_MAILER"] = "false"  # tests drive the mailer round by round
os.environ["PUBLIC_URL"] = "http://gateway.test:8000/"  # the trailing slash must not matter
os.environ["WS_AUTH_TIMEOUT"] = "1"
os.environ["WS_RECHECK_INTERVAL"] = "0.5"

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import uuid  # noqa: E402
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator  # noqa: E402
from datetime import timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from devstack.mailsink import MailSink  # noqa: E402
from devstack.ports import bind_listener  # noqa: E402
from notifications.events import HANDLERS  # noqa: E402
from notifications.mailer import Mailer  # noqa: E402
from notifications.main import app as notifications_app  # noqa: E402
from notifications.models import Delivery, Notification, utcnow  # noqa: E402
from notifications.settings import settings  # noqa: E402
from servicekit.events.envelope import Envelope  # noqa: E402
from servicekit_testing import TokenFactory, service_fixtures  # noqa: E402

pytest_plugins = ["servicekit_testing.plugin"]
service_app, service_dir = service_fixtures(notifications_app, Path(__file__).resolve().parents[1])

NOTIFICATIONS = "/api/v1/notifications"

Handle = Callable[[str, dict[str, Any]], Awaitable[None]]
AddNotification = Callable[..., Awaitable[Notification]]
AddDelivery = Callable[..., Awaitable[Delivery]]
MakeMailer = Callable[..., Mailer]
LoadDelivery = Callable[[uuid.UUID], Awaitable[Delivery]]


@pytest.fixture
def handle(app: FastAPI) -> Handle:
    """Run an event's handler as the consumer does: in a transaction that then commits."""

    async def handle(event_type: str, data: dict[str, Any]) -> None:
        envelope = Envelope(type=event_type, producer="auth", data=data)
        async with app.state.database.sessionmaker() as session:
            await HANDLERS[event_type](session, envelope)
            await session.commit()

    return handle


@pytest.fixture
def add_notification(app: FastAPI) -> AddNotification:
    """Insert a notification directly, with the times a test needs."""

    async def add(
        user_id: uuid.UUID,
        *,
        title: str = "Hello",
        age: timedelta = timedelta(0),
        read: bool = False,
    ) -> Notification:
        created_at = utcnow() - age
        notification = Notification(
            user_id=user_id,
            kind="welcome",
            title=title,
            body=f"Body of {title}",
            created_at=created_at,
            read_at=created_at if read else None,
        )
        async with app.state.database.sessionmaker() as session:
            session.add(notification)
            await session.commit()
        return notification

    return add


@pytest.fixture
def add_delivery(app: FastAPI) -> AddDelivery:
    """Insert a delivery directly (a verification mail unless told otherwise)."""

    async def add(user_id: uuid.UUID | None = None, **fields: Any) -> Delivery:
        values: dict[str, Any] = {
            "user_id": user_id or uuid.uuid4(),
            "to": "alice@example.com",
            "template": "verify_email",
            "subject": "Confirm your email address",
            "context": {
                "name": "Alice",
                "link": "http://gateway.test:8000/api/v1/auth/verify-email?token=tok-123",
                "token": "tok-123",
            },
        } | fields
        delivery = Delivery(**values)
        async with app.state.database.sessionmaker() as session:
            session.add(delivery)
            await session.commit()
        return delivery

    return add


@pytest.fixture
def load_delivery(app: FastAPI) -> LoadDelivery:
    """The delivery as the database holds it now."""

    async def load(delivery_id: uuid.UUID) -> Delivery:
        async with app.state.database.sessionmaker() as session:
            delivery = await session.get(Delivery, delivery_id)
            assert delivery is not None
            return delivery

    return load


# ---- mail ---------------------------------------------------------------------------------


@pytest.fixture
async def mail_sink() -> AsyncIterator[MailSink]:
    """A real SMTP server on free ports; `stop()` it to simulate an outage, `start()` again."""
    sink = MailSink(smtp_port=0, http_port=0)
    await sink.start()
    try:
        yield sink
    finally:
        await sink.stop()


@pytest.fixture
async def mailbox(mail_sink: MailSink) -> AsyncIterator[httpx.AsyncClient]:
    """The sink's Mailpit-compatible HTTP API."""
    async with httpx.AsyncClient(base_url=mail_sink.api_url, timeout=5) as client:
        yield client


@pytest.fixture
def make_mailer(app: FastAPI, mail_sink: MailSink) -> MakeMailer:
    """A mailer sending to the sink; keyword arguments override settings."""

    def make(**overrides: Any) -> Mailer:
        configured = settings.model_copy(
            update={"SMTP_HOST": mail_sink.smtp_host, "SMTP_PORT": mail_sink.smtp_port} | overrides
        )
        return Mailer(configured, app.state.database.sessionmaker)

    return make


@pytest.fixture
def mailer(make_mailer: MakeMailer) -> Mailer:
    return make_mailer()


# ---- a real server, for WebSockets --------------------------------------------------------


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without signal handlers: pytest owns Ctrl+C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@pytest.fixture(scope="session")
async def ws_url(app: FastAPI, tokens: TokenFactory) -> AsyncIterator[str]:
    """The stream's URL on a uvicorn serving the test app (whose lifespan already runs)."""
    sock = bind_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_config=None, log_level="warning")
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(1000):  # up to 10 s
        if server.started:
            break
        await asyncio.sleep(0.01)
    else:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"ws://127.0.0.1:{port}{NOTIFICATIONS}/ws"
    finally:
        server.should_exit = True
        await task
