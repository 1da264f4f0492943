"""Dependencies of the notifications routes."""

import uuid
from typing import Annotated

from fastapi import Depends

from notifications import service
from notifications.models import Notification
from servicekit.auth import Caller
from servicekit.db import SessionDep
from servicekit.errors import NotFound


async def valid_owned_notification(
    notification_id: uuid.UUID, session: SessionDep, caller: Caller
) -> Notification:
    """The notification named in the path if it is the caller's (else 404, never 403)."""
    notification = await service.get_owned(
        session=session, user_id=caller.user_id, notification_id=notification_id
    )
    if notification is None:
        raise NotFound(service.NOTIFICATION_NOT_FOUND)
    return notification


OwnedNotification = Annotated[Notification, Depends(valid_owned_notification)]
