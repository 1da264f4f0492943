"""Fixtures for the items service's tests: the shared test kit on items' app, plus items' own."""

from servicekit_testing import prepare_environment

prepare_environment("items")  # before anything imports the service: its settings read the env

import uuid  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from sqlmodel import col, select  # noqa: E402

from items.main import app as items_app  # noqa: E402
from items.models import Item  # noqa: E402
from servicekit.events.outbox import OutboxEvent  # noqa: E402
from servicekit_testing import Headers, service_fixtures  # noqa: E402

pytest_plugins = ["servicekit_testing.plugin"]
service_app, service_dir = service_fixtures(items_app, Path(__file__).resolve().parents[1])

ITEMS = "/api/v1/items"

CreateItem = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def create_item(client: httpx.AsyncClient, alice: Headers) -> CreateItem:
    """POST an item (Alice's unless `headers` says otherwise) and return its body."""

    async def create(headers: Headers | None = None, **fields: Any) -> dict[str, Any]:
        body = {"title": "A lamp"} | fields
        response = await client.post(f"{ITEMS}/", json=body, headers=headers or alice)
        assert response.status_code == 201, response.text
        return dict(response.json())

    return create


@pytest.fixture
def stored_item(app: FastAPI) -> Callable[[str | uuid.UUID], Awaitable[Item | None]]:
    """Read an item straight from the database, bypassing the API."""

    async def fetch(item_id: str | uuid.UUID) -> Item | None:
        async with app.state.database.sessionmaker() as session:
            return await session.get(Item, uuid.UUID(str(item_id)))

    return fetch


@pytest.fixture
def outbox(app: FastAPI) -> Callable[[], Awaitable[list[OutboxEvent]]]:
    """Every event staged so far, in commit order."""

    async def read() -> list[OutboxEvent]:
        async with app.state.database.sessionmaker() as session:
            statement = select(OutboxEvent).order_by(col(OutboxEvent.seq))
            return list((await session.exec(statement)).all())

    return read
