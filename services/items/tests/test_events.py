"""Handlers of consumed events, called directly with a session as the consumer will."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from items.events import HANDLERS, on_user_deleted
from items.models import Item
from servicekit.events.envelope import Envelope
from servicekit.events.outbox import OutboxEvent

ITEMS = "/api/v1/items"
CreateItem = Callable[..., Awaitable[dict[str, Any]]]
Outbox = Callable[[], Awaitable[list[OutboxEvent]]]


def user_deleted(user_id: uuid.UUID) -> Envelope:
    return Envelope(type="user.deleted", producer="auth", data={"user_id": str(user_id)})


async def items_of(session: AsyncSession, owner_id: uuid.UUID) -> int:
    statement = select(func.count()).select_from(Item).where(col(Item.owner_id) == owner_id)
    return (await session.exec(statement)).one()


def test_handlers_cover_user_deleted() -> None:
    assert set(HANDLERS) == {"user.deleted"}


async def test_user_deleted_erases_that_users_items_only(
    app: FastAPI,
    client: httpx.AsyncClient,
    alice_id: uuid.UUID,
    bob: dict[str, str],
    create_item: CreateItem,
    outbox: Outbox,
) -> None:
    mine = [await create_item(title=f"mine {n}") for n in range(3)]
    theirs = await create_item(headers=bob, title="Bob's")

    async with app.state.database.sessionmaker() as session:
        await HANDLERS["user.deleted"](session, user_deleted(alice_id))
        await session.commit()

    async with app.state.database.sessionmaker() as session:
        assert await items_of(session, alice_id) == 0
        assert await session.get(Item, uuid.UUID(theirs["id"])) is not None
    deleted = [event for event in await outbox() if event.type == "item.deleted"]
    assert sorted(event.data["item_id"] for event in deleted) == sorted(i["id"] for i in mine)
    assert {event.data["owner_id"] for event in deleted} == {str(alice_id)}


async def test_user_deleted_leaves_committing_to_the_consumer(
    app: FastAPI, alice_id: uuid.UUID, create_item: CreateItem, outbox: Outbox
) -> None:
    await create_item()

    async with app.state.database.sessionmaker() as session:
        await on_user_deleted(session, user_deleted(alice_id))
        await session.rollback()  # the consumer's transaction failed

    async with app.state.database.sessionmaker() as session:
        assert await items_of(session, alice_id) == 1
    assert [event.type for event in await outbox()] == ["item.created"]


async def test_user_deleted_for_a_user_without_items_does_nothing(
    app: FastAPI, create_item: CreateItem, outbox: Outbox
) -> None:
    await create_item()

    async with app.state.database.sessionmaker() as session:
        await on_user_deleted(session, user_deleted(uuid.uuid4()))
        await session.commit()

    assert [event.type for event in await outbox()] == ["item.created"]


async def test_user_deleted_redelivered_is_harmless(
    app: FastAPI, alice_id: uuid.UUID, create_item: CreateItem, outbox: Outbox
) -> None:
    await create_item()
    envelope = user_deleted(alice_id)

    for _ in range(2):
        async with app.state.database.sessionmaker() as session:
            await on_user_deleted(session, envelope)
            await session.commit()

    assert [event.type for event in await outbox()] == ["item.created", "item.deleted"]


async def test_an_item_created_after_the_deletion_was_seen_is_refused(
    app: FastAPI, client: httpx.AsyncClient, alice: dict[str, str], alice_id: uuid.UUID
) -> None:
    """A request authorised a moment before the deletion cannot leave an item behind it."""
    async with app.state.database.sessionmaker() as session:
        await HANDLERS["user.deleted"](session, user_deleted(alice_id))
        await session.commit()

    response = await client.post(ITEMS + "/", headers=alice, json={"title": "after"})

    assert response.status_code == 401
    assert response.json()["detail"] == "Account no longer available"
    async with app.state.database.sessionmaker() as session:
        assert await items_of(session, alice_id) == 0
