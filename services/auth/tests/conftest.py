"""Fixtures for the auth service's tests: the shared test kit on auth's app, plus auth's own."""

import os
import tempfile

from servicekit_testing import prepare_environment

prepare_environment("auth")  # before anything imports the service: its settings read the env
os.environ["AUTH_KEYS_DIR"] = tempfile.mkdtemp(prefix="auth-test-keys-")
os.environ["FIRST_ADMIN_EMAIL"] = ""  # tests create their admin explicitly
os.environ["REVOCATION_CHECK_INTERVAL"] = "3600"  # tests restore revocations themselves

import uuid  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from sqlalchemy import text  # noqa: E402

from auth import service  # noqa: E402
from auth.main import app as auth_app  # noqa: E402
from servicekit_testing import TEST_PASSWORD as PASSWORD  # noqa: E402
from servicekit_testing import service_fixtures  # noqa: E402

pytest_plugins = ["servicekit_testing.plugin"]
service_app, service_dir = service_fixtures(auth_app, Path(__file__).resolve().parents[1])

Register = Callable[..., Awaitable[dict[str, Any]]]
Login = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def register(client: httpx.AsyncClient) -> Register:
    async def register(email: str | None = None, password: str = PASSWORD) -> dict[str, Any]:
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        response = await client.post(
            "/api/v1/auth/register", json={"email": email, "password": password}
        )
        assert response.status_code == 201, response.text
        return response.json()

    return register


@pytest.fixture
def login(client: httpx.AsyncClient) -> Login:
    async def login(email: str, password: str = PASSWORD) -> dict[str, Any]:
        response = await client.post(
            "/api/v1/auth/token", data={"username": email, "password": password}
        )
        assert response.status_code == 200, response.text
        return response.json()

    return login


@pytest.fixture
async def user(register: Register, login: Login) -> dict[str, Any]:
    """A registered, logged-in user: its account and its token pair."""
    account = await register()
    return {"account": account, **await login(account["email"])}


@pytest.fixture
async def admin(app: FastAPI, login: Login) -> dict[str, Any]:
    """Auth's admin is a real account logged in, not the kit's token for an unknown id."""
    async with app.state.database.sessionmaker() as session:
        await service.ensure_first_admin(
            session=session, email="root@example.com", password=PASSWORD
        )
    return await login("root@example.com")


@pytest.fixture
def outbox(app: FastAPI) -> Callable[[str], Awaitable[list[dict[str, Any]]]]:
    """The events staged in the outbox, oldest first: mailed tokens are read from here."""

    async def events(event_type: str) -> list[dict[str, Any]]:
        async with app.state.database.engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT data FROM outbox_event WHERE type = :t ORDER BY occurred_at"),
                {"t": event_type},
            )
            return [row.data for row in rows]

    return events
