"""Tables and schemas of the notifications service."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from servicekit.db import metadata
from servicekit.events.erasures import register_erased_accounts
from servicekit.events.processed import register_processed_events
from servicekit.listing import Page
from servicekit.timestamps import timestamp_field, utcnow

__all__ = ["metadata"]

register_processed_events(metadata)  # notifications consumes events
register_erased_accounts(metadata)  # deletions are final, whatever the event order


class NotificationKind(StrEnum):
    WELCOME = "welcome"
    SECURITY = "security"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    RETRYING = "retrying"
    FAILED = "failed"


#: The states the mailer still has to act on.
OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)


# ---- tables -------------------------------------------------------------------------------


class Notification(SQLModel, table=True):
    """An in-app message to one user."""

    __tablename__ = "notification"
    __table_args__ = (
        # "Own, newest first": equality on user_id, then created_at (scanned backwards).
        sa.Index("ix_notification_user_id_created_at", "user_id", "created_at", "id"),
        # The unread count and `unread_only` touch only the (few) unread rows.
        sa.Index(
            "ix_notification_user_id_unread",
            "user_id",
            "created_at",
            postgresql_where=sa.text("read_at IS NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID
    kind: str = Field(max_length=32)
    title: str = Field(max_length=200)
    body: str = Field(sa_type=sa.Text)  # type: ignore[call-overload]
    created_at: datetime = timestamp_field(default_factory=utcnow)
    read_at: datetime | None = timestamp_field(default=None)


class Delivery(SQLModel, table=True):
    """One outgoing mail and where it stands; kept after it is sent or has failed."""

    __tablename__ = "delivery"
    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'retrying', 'failed')", name="status_known"
        ),
        # The mailer's only query: open deliveries that are due, soonest first.
        sa.Index(
            "ix_delivery_due",
            "next_attempt_at",
            postgresql_where=sa.text("status IN ('pending', 'retrying')"),
        ),
        # The admin list: newest first, optionally by status.
        sa.Index("ix_delivery_created_at", "created_at"),
        sa.Index("ix_delivery_status_created_at", "status", "created_at"),
        # Erasure when the user is deleted.
        sa.Index("ix_delivery_user_id", "user_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID
    to: str = Field(max_length=320)
    template: str = Field(max_length=64)
    subject: str = Field(max_length=200)
    #: What the template needs. Secrets in it (tokens, links) are erased once the delivery
    #: is final, so the table does not keep usable tokens around.
    context: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)  # type: ignore[call-overload]
    status: str = Field(default=DeliveryStatus.PENDING.value, max_length=16)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=1000)
    #: The request that caused the mail (carried by its event): the mail repeats it.
    request_id: str | None = Field(default=None, max_length=128)
    #: When the mailer may (re)try; while a sender holds the delivery, the end of its lease.
    next_attempt_at: datetime = timestamp_field(default_factory=utcnow)
    created_at: datetime = timestamp_field(default_factory=utcnow)
    updated_at: datetime = timestamp_field(default_factory=utcnow)
    sent_at: datetime | None = timestamp_field(default=None)


# ---- schemas ------------------------------------------------------------------------------


class NotificationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    title: str
    body: str
    created_at: datetime
    read_at: datetime | None


class NotificationList(Page[NotificationPublic]):
    #: Unread notifications of the caller, whatever the filter and page.
    unread: int


class DeliveryPublic(BaseModel):
    """What an administrator sees of a mail: never its context (it holds tokens)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    to: str
    template: str
    subject: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


class DeliveryList(Page[DeliveryPublic]):
    pass
