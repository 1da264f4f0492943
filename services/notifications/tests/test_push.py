"""Pushes are published on the user's Redis channel after the outermost commit, never before."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from redis.asyncio.client import PubSub

from notifications.models import NotificationKind
from notifications.push import channel_for
from notifications.service import notify as stage_notification


@pytest.fixture
async def alice_channel(app: FastAPI, alice_id: uuid.UUID) -> AsyncIterator[PubSub]:
    """A subscriber to Alice's channel, as another replica's hub would be."""
    async with app.state.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(channel_for(alice_id))
        yield pubsub


async def received(pubsub: PubSub, within: float = 1.0) -> list[dict[str, Any]]:
    """Every message that arrives within `within` seconds, decoded."""
    messages = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (left := deadline - loop.time()) > 0:
        message = await pubsub.get_message(timeout=min(left, 0.05))
        if message is not None:
            messages.append(json.loads(message["data"]))
    return messages


def notify(session: Any, user_id: uuid.UUID, title: str = "Hi") -> Any:
    return stage_notification(
        session=session, user_id=user_id, kind=NotificationKind.SECURITY, title=title, body="b"
    )


async def test_committed_notification_is_published_on_its_users_channel(
    app: FastAPI, alice_id: uuid.UUID, alice_channel: PubSub
) -> None:
    async with app.state.database.sessionmaker() as session:
        notification = notify(session, alice_id, "Password changed")
        await session.commit()

    [message] = await received(alice_channel, within=0.5)

    assert message == {
        "id": str(notification.id),
        "kind": "security",
        "title": "Password changed",
        "body": "b",
        "created_at": message["created_at"],
        "read_at": None,
    }


async def test_other_users_notifications_are_not_on_this_channel(
    app: FastAPI, bob_id: uuid.UUID, alice_channel: PubSub
) -> None:
    async with app.state.database.sessionmaker() as session:
        notify(session, bob_id)
        await session.commit()

    assert await received(alice_channel, within=0.3) == []


async def test_rolled_back_notification_is_not_published(
    app: FastAPI, alice_id: uuid.UUID, alice_channel: PubSub
) -> None:
    async with app.state.database.sessionmaker() as session:
        notify(session, alice_id)
        await session.flush()
        await session.rollback()

    assert await received(alice_channel, within=0.3) == []


async def test_nothing_is_published_until_the_outermost_transaction_commits(
    app: FastAPI, alice_id: uuid.UUID, alice_channel: PubSub
) -> None:
    async with app.state.database.sessionmaker() as session:
        async with session.begin_nested():  # a consumer may wrap each handler in a savepoint
            notify(session, alice_id, "inside")
        assert await received(alice_channel, within=0.3) == []

        await session.commit()

    assert [m["title"] for m in await received(alice_channel, within=0.5)] == ["inside"]


async def test_notification_of_a_rolled_back_savepoint_is_not_published(
    app: FastAPI, alice_id: uuid.UUID, alice_channel: PubSub
) -> None:
    async with app.state.database.sessionmaker() as session:
        notify(session, alice_id, "kept")
        savepoint = await session.begin_nested()
        notify(session, alice_id, "undone")
        await session.flush()
        await savepoint.rollback()
        await session.commit()

    assert [m["title"] for m in await received(alice_channel, within=0.5)] == ["kept"]


async def test_a_session_reused_after_a_rollback_does_not_publish_old_pushes(
    app: FastAPI, alice_id: uuid.UUID, alice_channel: PubSub
) -> None:
    async with app.state.database.sessionmaker() as session:
        notify(session, alice_id, "rolled back")
        await session.rollback()
        notify(session, alice_id, "committed")
        await session.commit()

    assert [m["title"] for m in await received(alice_channel, within=0.5)] == ["committed"]
