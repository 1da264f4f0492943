"""The record of handled events, in the schema of every service that consumes events."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from servicekit.events.tables import PlatformTable, copy_into
from servicekit.timestamps import timestamp_field


class ProcessedEvent(PlatformTable, table=True):
    """Ids of the events this service has handled: what makes redelivery harmless."""

    __tablename__ = "processed_event"

    event_id: uuid.UUID = Field(primary_key=True)
    event_type: str = Field(max_length=100)
    processed_at: datetime = timestamp_field()


def register_processed_events(metadata: sa.MetaData) -> sa.Table:
    """Put `processed_event` in a consuming service's metadata, so its migrations hold it."""
    return copy_into(metadata, ProcessedEvent)
