"""Fixtures for the users service's tests: the shared test kit on users' app, plus users' own."""

from servicekit_testing import prepare_environment

prepare_environment("users")  # before anything imports the service: its settings read the env

from collections.abc import Awaitable, Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from sqlmodel import col, select  # noqa: E402

from servicekit.events.envelope import Envelope  # noqa: E402
from servicekit_testing import service_fixtures  # noqa: E402
from users.events import HANDLERS  # noqa: E402
from users.main import app as users_app  # noqa: E402
from users.models import Profile  # noqa: E402

pytest_plugins = ["servicekit_testing.plugin"]
service_app, service_dir = service_fixtures(users_app, Path(__file__).resolve().parents[1])


@pytest.fixture
def profiles(app: FastAPI) -> Callable[[], Awaitable[list[Profile]]]:
    """Every stored profile, read straight from the database."""

    async def read() -> list[Profile]:
        async with app.state.database.sessionmaker() as session:
            statement = select(Profile).order_by(col(Profile.created_at))
            return list((await session.exec(statement)).all())

    return read


@pytest.fixture
def deliver(app: FastAPI) -> Callable[[str, dict[str, object]], Awaitable[Envelope]]:
    """Hand an event to its handler in a transaction of its own, as the consumer will."""

    async def handle(event_type: str, data: dict[str, object]) -> Envelope:
        envelope = Envelope(type=event_type, producer="auth", data=data)
        async with app.state.database.sessionmaker() as session:
            await HANDLERS[event_type](session, envelope)
            await session.commit()
        return envelope

    return handle
