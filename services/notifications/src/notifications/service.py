"""Business rules of the notifications service: one function per operation; the lists read
through the read pool and return the API schemas, changes go through the session.

Functions that only stage rows (`notify`, `queue_mail`, `erase_user`) leave the commit
to their caller, so an event handler's effects and the consumer's bookkeeping commit
together; the route-facing ones commit themselves.
"""

import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, delete, func, update
from sqlmodel.ext.asyncio.session import AsyncSession

from notifications import push
from notifications.models import (
    Delivery,
    DeliveryList,
    DeliveryStatus,
    Notification,
    NotificationKind,
    NotificationList,
    NotificationPublic,
)
from servicekit.db import Database
from servicekit.errors import NotFound
from servicekit.listing import PageQuery, count_rows, fetch_page, fetch_rows
from servicekit.logging import request_id_var
from servicekit.timestamps import utcnow

NOTIFICATION_NOT_FOUND = "Notification not found"

_NEWEST_FIRST = (col(Notification.created_at).desc(), col(Notification.id).desc())
_OWN = col(Notification.user_id) == sa.bindparam("user_id")
_UNREAD = col(Notification.read_at).is_(None)
_ALL_OWN = PageQuery(Notification, where=(_OWN,), order_by=_NEWEST_FIRST)
_UNREAD_OWN = PageQuery(Notification, where=(_OWN, _UNREAD), order_by=_NEWEST_FIRST)

_DELIVERIES_NEWEST_FIRST = (col(Delivery.created_at).desc(), col(Delivery.id).desc())
_ALL_DELIVERIES = PageQuery(Delivery, order_by=_DELIVERIES_NEWEST_FIRST)
_DELIVERIES_IN_STATUS = PageQuery(
    Delivery,
    where=(col(Delivery.status) == sa.bindparam("status"),),
    order_by=_DELIVERIES_NEWEST_FIRST,
)


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
    *, database: Database, user_id: uuid.UUID, unread_only: bool, limit: int, offset: int
) -> NotificationList:
    """A page of the user's notifications, newest first; with the total and the unread count."""
    query = _UNREAD_OWN if unread_only else _ALL_OWN
    rows, total = await fetch_rows(database, query, limit=limit, offset=offset, user_id=user_id)
    unread = total if unread_only else await count_rows(database, _UNREAD_OWN, user_id=user_id)
    items = [dict(row) for row in rows]
    return NotificationList(items=items, total=total, limit=limit, offset=offset, unread=unread)


async def mark_read(
    *, session: AsyncSession, user_id: uuid.UUID, notification_id: uuid.UUID
) -> NotificationPublic:
    """Mark one of the user's notifications read (another user's is 404); reading it again
    keeps the first time it was read."""
    statement = (
        update(Notification)
        .where(col(Notification.id) == notification_id, col(Notification.user_id) == user_id)
        .values(read_at=func.coalesce(col(Notification.read_at), utcnow()))
        .returning(Notification)
        .execution_options(populate_existing=True)
    )
    notification = (await session.exec(statement)).scalars().one_or_none()
    if notification is None:
        raise NotFound(NOTIFICATION_NOT_FOUND)
    await session.commit()
    return NotificationPublic.model_validate(notification)


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
    *, database: Database, status: DeliveryStatus | None, limit: int, offset: int
) -> DeliveryList:
    """A page of every outgoing mail, newest first, optionally in one status."""
    query = _ALL_DELIVERIES if status is None else _DELIVERIES_IN_STATUS
    return await fetch_page(
        database, query, DeliveryList, limit=limit, offset=offset, status=status and status.value
    )


# ---- erasure ------------------------------------------------------------------------------


async def erase_user(*, session: AsyncSession, user_id: uuid.UUID) -> None:
    """Delete every notification and delivery of the user (the account is gone)."""
    await session.exec(delete(Notification).where(col(Notification.user_id) == user_id))
    await session.exec(delete(Delivery).where(col(Delivery.user_id) == user_id))
