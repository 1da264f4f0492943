"""Handlers of the events the users service consumes, keyed by event type.

A handler runs inside the consumer's transaction and does not commit: the consumer
commits, records the event id, then acknowledges the message. Each handler gives the
same result when an event is delivered again.
"""

import uuid

from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from servicekit.events.envelope import Envelope, Handler
from servicekit.events.erasures import guard_erased_accounts
from users import service


class UserRegistered(BaseModel):
    user_id: uuid.UUID
    email: str
    full_name: str | None = None


class UserDeleted(BaseModel):
    user_id: uuid.UUID


async def on_user_registered(session: AsyncSession, envelope: Envelope) -> None:
    """Create or complete the profile: the email, and a default name if none is set."""
    event = UserRegistered.model_validate(envelope.data)
    await service.record_registration(
        session=session, user_id=event.user_id, email=event.email, full_name=event.full_name
    )


async def on_user_deleted(session: AsyncSession, envelope: Envelope) -> None:
    """Erase the profile of the deleted account."""
    event = UserDeleted.model_validate(envelope.data)
    await service.erase(session=session, user_id=event.user_id)


HANDLERS: dict[str, Handler] = guard_erased_accounts(
    {"user.registered": on_user_registered, "user.deleted": on_user_deleted},
    erasing="user.deleted",
)
