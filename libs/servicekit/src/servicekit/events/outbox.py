"""The transactional outbox: an event is stored in the same transaction as the change it describes.

A relay publishes pending rows later, so a crash or a Redis outage delays events but
never loses them, and an event is never published for a change that rolled back.
"""

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from servicekit.events.envelope import Envelope


class OutboxEvent(SQLModel, table=True):
    __tablename__ = "outbox_event"
    __table_args__ = (
        # The relay's only query: what is still to publish, oldest first.
        sa.Index(
            "ix_outbox_event_pending",
            "occurred_at",
            postgresql_where=sa.text("published_at IS NULL"),
        ),
    )

    id: uuid.UUID = Field(primary_key=True)
    type: str = Field(max_length=100)
    occurred_at: datetime = Field(sa_type=sa.DateTime(timezone=True))  # type: ignore[call-overload]
    producer: str = Field(max_length=50)
    request_id: str | None = Field(default=None, max_length=128)
    data: dict[str, Any] = Field(sa_type=JSONB)  # type: ignore[call-overload]
    published_at: datetime | None = Field(
        default=None,
        sa_type=sa.DateTime(timezone=True),  # type: ignore[call-overload]
    )

    def envelope(self) -> Envelope:
        return Envelope(
            id=self.id,
            type=self.type,
            occurred_at=self.occurred_at,
            producer=self.producer,
            request_id=self.request_id,
            data=self.data,
        )


def add_event(session: AsyncSession, *, type: str, producer: str, data: dict[str, Any]) -> Envelope:
    """Stage an event in the caller's transaction; it is published only if that commits."""
    envelope = Envelope(type=type, producer=producer, data=data)
    session.add(
        OutboxEvent(
            id=envelope.id,
            type=envelope.type,
            occurred_at=envelope.occurred_at,
            producer=envelope.producer,
            request_id=envelope.request_id,
            data=envelope.model_dump(mode="json")["data"],
        )
    )
    return envelope
