"""Event handlers: the rows each event leaves once the consumer's transaction commits.

Idempotence (a redelivered event has no second effect) is the consumer's job; these
tests call each handler once, as the consumer would, and commit.
"""

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from notifications.events import HANDLERS
from notifications.models import Delivery, Notification
from servicekit.events.envelope import Envelope

Handle = Callable[[str, dict[str, Any]], Awaitable[None]]
PUBLIC_URL = "http://gateway.test:8000"  # as the test settings say, trailing slash trimmed


async def notifications_of(session: AsyncSession, user_id: uuid.UUID) -> list[Notification]:
    result = await session.exec(select(Notification).where(col(Notification.user_id) == user_id))
    return list(result.all())


async def deliveries_of(session: AsyncSession, user_id: uuid.UUID) -> list[Delivery]:
    result = await session.exec(select(Delivery).where(col(Delivery.user_id) == user_id))
    return list(result.all())


def test_handlers_cover_every_event_the_service_consumes() -> None:
    assert set(HANDLERS) == {
        "user.registered",
        "auth.verification_requested",
        "auth.password_reset_requested",
        "auth.password_changed",
        "user.deleted",
    }


async def test_user_registered_adds_a_welcome_and_a_verification_mail(
    handle: Handle, session: AsyncSession, alice_id: uuid.UUID
) -> None:
    await handle(
        "user.registered",
        {
            "user_id": str(alice_id),
            "email": "alice@example.com",
            "full_name": "Alice Liddell",
            "verification_token": "verify-me",
        },
    )

    [welcome] = await notifications_of(session, alice_id)
    assert (welcome.kind, welcome.read_at) == ("welcome", None)
    assert welcome.title
    [mail] = await deliveries_of(session, alice_id)
    assert (mail.to, mail.template, mail.status, mail.attempts) == (
        "alice@example.com",
        "verify_email",
        "pending",
        0,
    )
    assert mail.context == {
        "name": "alice@example.com",  # never the name typed at registration
        "link": f"{PUBLIC_URL}/api/v1/auth/verify-email?token=verify-me",
        "token": "verify-me",
    }


async def test_user_registered_without_verification_token_mails_nothing(
    handle: Handle, session: AsyncSession, alice_id: uuid.UUID
) -> None:
    await handle(
        "user.registered",
        {
            "user_id": str(alice_id),
            "email": "admin@example.com",
            "full_name": None,
            "verification_token": None,
        },
    )

    assert len(await notifications_of(session, alice_id)) == 1
    assert await deliveries_of(session, alice_id) == []


async def test_verification_requested_mails_a_new_link(
    handle: Handle, session: AsyncSession, alice_id: uuid.UUID
) -> None:
    await handle(
        "auth.verification_requested",
        {"user_id": str(alice_id), "email": "alice@example.com", "verification_token": "a/b+c"},
    )

    [mail] = await deliveries_of(session, alice_id)
    assert mail.template == "verify_email"
    # Quoted, so any token survives the trip through a URL.
    assert mail.context["link"] == f"{PUBLIC_URL}/api/v1/auth/verify-email?token=a%2Fb%2Bc"
    assert mail.context["token"] == "a/b+c"
    assert await notifications_of(session, alice_id) == []


async def test_password_reset_requested_mails_the_link_and_the_raw_token(
    handle: Handle, session: AsyncSession, alice_id: uuid.UUID
) -> None:
    await handle(
        "auth.password_reset_requested",
        {"user_id": str(alice_id), "email": "alice@example.com", "reset_token": "reset-me"},
    )

    [mail] = await deliveries_of(session, alice_id)
    assert (mail.template, mail.status, mail.to) == (
        "reset_password",
        "pending",
        "alice@example.com",
    )
    assert mail.context["link"] == f"{PUBLIC_URL}/reset-password?token=reset-me"
    assert mail.context["token"] == "reset-me"
    assert await notifications_of(session, alice_id) == []


async def test_password_changed_adds_a_security_notification_and_a_mail(
    handle: Handle, session: AsyncSession, alice_id: uuid.UUID
) -> None:
    await handle("auth.password_changed", {"user_id": str(alice_id), "email": "alice@example.com"})

    [notification] = await notifications_of(session, alice_id)
    assert notification.kind == "security"
    [mail] = await deliveries_of(session, alice_id)
    assert (mail.template, mail.status) == ("password_changed", "pending")


async def test_user_deleted_erases_that_users_notifications_and_deliveries_only(
    handle: Handle, session: AsyncSession, alice_id: uuid.UUID, bob_id: uuid.UUID
) -> None:
    for user_id in (alice_id, bob_id):
        await handle(
            "user.registered",
            {
                "user_id": str(user_id),
                "email": f"{user_id}@example.com",
                "full_name": None,
                "verification_token": "t",
            },
        )
        await handle("auth.password_changed", {"user_id": str(user_id), "email": "x@example.com"})

    await handle("user.deleted", {"user_id": str(alice_id)})

    assert await notifications_of(session, alice_id) == []
    assert await deliveries_of(session, alice_id) == []
    assert len(await notifications_of(session, bob_id)) == 2
    assert len(await deliveries_of(session, bob_id)) == 2


async def test_handler_effects_vanish_when_the_consumer_rolls_back(
    app: FastAPI, session: AsyncSession, alice_id: uuid.UUID
) -> None:
    envelope = Envelope(
        type="auth.password_changed",
        producer="auth",
        data={"user_id": str(alice_id), "email": "alice@example.com"},
    )
    async with app.state.database.sessionmaker() as consumer_session:
        await HANDLERS[envelope.type](consumer_session, envelope)
        await consumer_session.rollback()

    assert await notifications_of(session, alice_id) == []
    assert await deliveries_of(session, alice_id) == []


async def test_events_arriving_after_the_deletion_create_nothing(
    handle: Handle, session: AsyncSession, alice_id: uuid.UUID
) -> None:
    """A crash can deliver a registration after the deletion behind it: nothing comes back."""
    await handle("user.deleted", {"user_id": str(alice_id)})
    email = f"{alice_id}@example.com"
    await handle(
        "user.registered",
        {"user_id": str(alice_id), "email": email, "full_name": None, "verification_token": "t"},
    )
    await handle("auth.password_changed", {"user_id": str(alice_id), "email": email})
    await handle(
        "auth.password_reset_requested",
        {"user_id": str(alice_id), "email": email, "reset_token": "r"},
    )

    assert await notifications_of(session, alice_id) == []
    assert await deliveries_of(session, alice_id) == []
