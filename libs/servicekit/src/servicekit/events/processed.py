"""The record of handled events, migrated by every service that consumes events."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class ProcessedEvent(SQLModel, table=True):
    """Ids of the events this service has handled: what makes redelivery harmless."""

    __tablename__ = "processed_event"

    event_id: uuid.UUID = Field(primary_key=True)
    event_type: str = Field(max_length=100)
    processed_at: datetime = Field(sa_type=sa.DateTime(timezone=True))  # type: ignore[call-overload]
