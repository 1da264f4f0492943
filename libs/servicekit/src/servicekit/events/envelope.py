"""The envelope every event travels in, whoever produced it."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlmodel.ext.asyncio.session import AsyncSession

from servicekit.logging import request_id_var
from servicekit.tracing import current_traceparent


class Envelope(BaseModel):
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    producer: str
    request_id: str | None = Field(default_factory=lambda: request_id_var.get())
    data: dict[str, Any]
    #: W3C trace context of the span that produced the event (see servicekit.tracing).
    traceparent: str | None = Field(default_factory=current_traceparent)


#: What a consuming service registers per event type; called inside the consumer's transaction.
Handler = Callable[[AsyncSession, Envelope], Awaitable[None]]
