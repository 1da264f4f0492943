"""Handlers of the events the items service consumes, keyed by event type.

A handler runs inside the consumer's transaction and does not commit: the consumer
commits, records the event id, then acknowledges the message.
"""

import uuid

from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from items import service
from servicekit.events.envelope import Envelope, Handler
from servicekit.events.erasures import guard_erased_accounts


class UserDeleted(BaseModel):
    user_id: uuid.UUID


async def on_user_deleted(session: AsyncSession, envelope: Envelope) -> None:
    """Erase every item of the deleted account (each one announced as `item.deleted`)."""
    event = UserDeleted.model_validate(envelope.data)
    await service.erase_owner(session=session, owner_id=event.user_id)


HANDLERS: dict[str, Handler] = guard_erased_accounts(
    {"user.deleted": on_user_deleted}, erasing="user.deleted"
)
