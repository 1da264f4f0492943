"""The transactional outbox: an event is stored in the same transaction as the change it describes.

A relay publishes pending rows later, so a crash or a Redis outage delays events but
never loses them, and an event is never published for a change that rolled back.

A transaction that staged events tells the relays when it commits, so they need not
wait for their next poll: it sends a PostgreSQL NOTIFY on `NOTIFY_CHANNEL` (delivered
to every replica's relay, and only if the transaction commits), and once committed
it calls this process's relay directly (`on_local_commit`), without the round trip.
"""

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlmodel import Field

from servicekit.events.envelope import Envelope
from servicekit.events.tables import PlatformTable, copy_into
from servicekit.timestamps import timestamp_field

logger = logging.getLogger(__name__)

#: The PostgreSQL channel a transaction that staged events notifies as it commits.
NOTIFY_CHANNEL = "outbox_event"

#: `Session.info` keys: the session announces its commits; its open transaction staged events.
_ANNOUNCES = "servicekit.outbox.announces"
_STAGED = "servicekit.outbox.staged"

_local_listeners: list[Callable[[], None]] = []


class OutboxEvent(PlatformTable, table=True):
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
    occurred_at: datetime = timestamp_field()
    producer: str = Field(max_length=50)
    request_id: str | None = Field(default=None, max_length=128)
    data: dict[str, Any] = Field(sa_type=JSONB)  # type: ignore[call-overload]
    published_at: datetime | None = timestamp_field(default=None)
    traceparent: str | None = Field(default=None, max_length=55)

    def envelope(self) -> Envelope:
        return Envelope(
            id=self.id,
            type=self.type,
            occurred_at=self.occurred_at,
            producer=self.producer,
            request_id=self.request_id,
            data=self.data,
            traceparent=self.traceparent,
        )


def register_outbox(metadata: sa.MetaData) -> sa.Table:
    """Put `outbox_event` in a publishing service's metadata, so its migrations hold it."""
    return copy_into(metadata, OutboxEvent)


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
            traceparent=envelope.traceparent,
        )
    )
    _announce_commit(session.sync_session)
    return envelope


def on_local_commit(listener: Callable[[], None]) -> Callable[[], None]:
    """Call `listener` after every commit in this process that staged events; return the undo."""
    _local_listeners.append(listener)
    return lambda: _local_listeners.remove(listener)


def _announce_commit(session: Session) -> None:
    session.info[_STAGED] = True
    if session.info.get(_ANNOUNCES):
        return
    session.info[_ANNOUNCES] = True
    sa.event.listen(session, "before_commit", _notify_relays)
    sa.event.listen(session, "after_commit", _wake_local_relays)
    sa.event.listen(session, "after_rollback", _forget_staged)


def _notify_relays(session: Session) -> None:
    # Inside the transaction: PostgreSQL delivers it at commit, and drops it on rollback.
    if session.info.get(_STAGED):
        session.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, "")))


def _wake_local_relays(session: Session) -> None:
    if session.info.pop(_STAGED, False):
        for listener in list(_local_listeners):
            try:
                listener()
            except Exception:  # the change is committed: never fail its request over a wake-up
                logger.exception("outbox relay could not be woken; its poll will publish")


def _forget_staged(session: Session) -> None:
    session.info.pop(_STAGED, None)
