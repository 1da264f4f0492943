"""Business rules of the notifications service: small async functions the routes call.

Functions that only stage rows (`notify`, `queue_mail`, `erase_user`) leave the commit
to their caller, so an event handler's effects and the consumer's bookkeeping commit
together; the route-facing ones commit themselves.
"""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, delete, func, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from notifications import push
from notifications.models import (
    Delivery,
    DeliveryStatus,
    Notification,
    NotificationKind,
    utcnow,
)
from servicekit.listing import fetch_page
from servicekit.logging import request_id_var

NOTIFICATION_NOT_FOUND = "Notification not found"

_NEWEST_FIRST = (col(Notification.created_at).desc(), col(Notification.id).desc())


async def _count_notifications(session: AsyncSession, *conditions: ColumnElement[bool]) -> int:
    count = select(func.count()).select_from(Notification).where(*conditions)
    return (await session.exec(count)).one()


# ---- notifications ------------------------------------------------------------------------


def notify(
    *, session: AsyncSession, user_id: uuid.UUID, kind: NotificationKind, title: str, body: str
) -> Notification:
    """Add a notification; its user's open sockets get it once the transaction commits."""
    notification = Notification(user_id=user_id, kind=kind.value, title=title, body=body)
    session.add(notification)
    push.stage(session, notification)
    return notification


async def get_all(
    *, session: AsyncSession, user_id: uuid.UUID, unread_only: bool, limit: int, offset: int
) -> tuple[Sequence[Notification], int, int]:
    """A page of the user's notifications, newest first; with the total and the unread count."""
    own = col(Notification.user_id) == user_id
    unread = col(Notification.read_at).is_(None)
    conditions = [own, unread] if unread_only else [own]
    page, total = await fetch_page(
        session,
        select(Notification).where(*conditions),
        order_by=_NEWEST_FIRST,
        limit=limit,
        offset=offset,
    )
    unread_count = total if unread_only else await _count_notifications(session, own, unread)
    return page, total, unread_count


async def get_owned(
    *, session: AsyncSession, user_id: uuid.UUID, notification_id: uuid.UUID
) -> Notification | None:
    """The notification if it belongs to `user_id`: another user's is simply not found."""
    statement = select(Notification).where(
        col(Notification.id) == notification_id, col(Notification.user_id) == user_id
    )
    return (await session.exec(statement)).one_or_none()


async def mark_read(*, session: AsyncSession, notification: Notification) -> Notification:
    """Mark it read; reading it again keeps the first time it was read."""
    if notification.read_at is None:
        notification.read_at = utcnow()
        session.add(notification)
        await session.commit()
    return notification


async def mark_all_read(*, session: AsyncSession, user_id: uuid.UUID) -> None:
    """Mark every unread notification of the user read."""
    await session.exec(
        update(Notification)
        .where(col(Notification.user_id) == user_id, col(Notification.read_at).is_(None))
        .values(read_at=utcnow())
    )
    await session.commit()


# ---- deliveries ---------------------------------------------------------------------------


def queue_mail(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    to: str,
    template: str,
    subject: str,
    context: dict[str, Any],
) -> Delivery:
    """Add a `pending` delivery; the mailer sends it after the transaction commits."""
    delivery = Delivery(
        user_id=user_id,
        to=to,
        template=template,
        subject=subject,
        context=context,
        request_id=request_id_var.get(),  # set by the consumer from the event
    )
    session.add(delivery)
    return delivery


async def get_deliveries(
    *, session: AsyncSession, status: DeliveryStatus | None, limit: int, offset: int
) -> tuple[Sequence[Delivery], int]:
    """A page of every outgoing mail, newest first, optionally in one status."""
    query = select(Delivery)
    if status is not None:
        query = query.where(col(Delivery.status) == status.value)
    return await fetch_page(
        session,
        query,
        order_by=(col(Delivery.created_at).desc(), col(Delivery.id).desc()),
        limit=limit,
        offset=offset,
    )


# ---- erasure ------------------------------------------------------------------------------


async def erase_user(*, session: AsyncSession, user_id: uuid.UUID) -> None:
    """Delete every notification and delivery of the user (the account is gone)."""
    await session.exec(delete(Notification).where(col(Notification.user_id) == user_id))
    await session.exec(delete(Delivery).where(col(Delivery.user_id) == user_id))
