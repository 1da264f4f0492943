"""The transactional outbox: an event is stored in the same transaction as the change it describes.

A relay publishes pending rows later, so a crash or a Redis outage delays events but
never loses them, and an event is never published for a change that rolled back.

A transaction that staged events tells the relays when it commits, so they need not
wait for their next poll: it sends a PostgreSQL NOTIFY on `NOTIFY_CHANNEL` (delivered
to every replica's relay, and only if the transaction commits), and once committed
it calls this process's relay directly (`on_local_commit`), without the round trip.

Order. Each event names its aggregate (the item, the account); the relays publish one
aggregate's events in the order their transactions committed. A sequence alone does not
give that order: a number is taken when the row is inserted, and a transaction that took
10 can commit after the one that took 11. So the rows are written last, at commit, under a
transaction-level advisory lock per aggregate: a second transaction staging events for the
same aggregate waits there until the first has committed, and only then takes its number.
For one aggregate, `seq` order is therefore commit order, whatever the producer locked or
in which order its ORM flushes. The locks are taken after everything else is flushed, in
sorted order, and nothing waits while holding them but the commit itself: they cannot be
part of a deadlock. An event without an aggregate is ordered among all its producer's.
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

#: `Session.info` keys: the session announces its commits; the events its open transaction
#: staged, each with its aggregate's lock key, written at commit.
_ANNOUNCES = "servicekit.outbox.announces"
_STAGED = "servicekit.outbox.staged"
_WRITTEN = "servicekit.outbox.written"

#: The advisory-lock space (the first of PostgreSQL's two int4 keys) of aggregates' locks.
AGGREGATE_LOCK_SPACE = 0x6F757462  # "outb"

#: One round trip: the aggregates' locks, sorted by lock id so that two transactions
#: always take the ones they share in the same order, and the NOTIFY, which PostgreSQL
#: delivers at commit and drops on rollback.
_LOCK_AGGREGATES_AND_NOTIFY = sa.text(
    "SELECT pg_notify(:channel, ''), count(pg_advisory_xact_lock(:space, lock_id))"
    " FROM (SELECT DISTINCT hashtext(key) AS lock_id"
    "       FROM unnest(CAST(:keys AS text[])) AS key ORDER BY lock_id) AS locks"
)

_local_listeners: list[Callable[[], None]] = []


class OutboxEvent(PlatformTable, table=True):
    __tablename__ = "outbox_event"
    __table_args__ = (
        # The relay's only query: what is still to publish, in commit order per aggregate.
        sa.Index(
            "ix_outbox_event_pending",
            "seq",
            postgresql_where=sa.text("published_at IS NULL"),
        ),
    )

    id: uuid.UUID = Field(primary_key=True)
    #: Taken at commit under the aggregate's lock (see the module's docstring).
    seq: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), nullable=False)
    )
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


def add_event(
    session: AsyncSession,
    *,
    type: str,
    producer: str,
    data: dict[str, Any],
    aggregate: str | None = None,
) -> Envelope:
    """Stage an event in the caller's transaction; it is published only if that commits.

    `aggregate` names what the event is about (an item's or an account's id): one
    aggregate's events are published in commit order. Without it, the event is ordered
    among every event of `producer`.
    """
    envelope = Envelope(type=type, producer=producer, data=data)
    lock_key = producer if aggregate is None else f"{producer}:{aggregate}"
    session.sync_session.info.setdefault(_STAGED, []).append((envelope, lock_key))
    _announce_commit(session.sync_session)
    return envelope


def on_local_commit(listener: Callable[[], None]) -> Callable[[], None]:
    """Call `listener` after every commit in this process that staged events; return the undo."""
    _local_listeners.append(listener)
    return lambda: _local_listeners.remove(listener)


def _announce_commit(session: Session) -> None:
    if session.info.get(_ANNOUNCES):
        return
    session.info[_ANNOUNCES] = True
    sa.event.listen(session, "before_commit", _write_staged)
    sa.event.listen(session, "after_commit", _wake_local_relays)
    sa.event.listen(session, "after_rollback", _forget_staged)


def _write_staged(session: Session) -> None:
    """Write the staged events as the transaction's last statements (see the docstring)."""
    staged: list[tuple[Envelope, str]] = session.info.get(_STAGED) or []
    if not staged:
        return
    session.flush()  # every other change first, with the row locks it takes
    session.execute(
        _LOCK_AGGREGATES_AND_NOTIFY,
        {"channel": NOTIFY_CHANNEL, "space": AGGREGATE_LOCK_SPACE,
         "keys": sorted({key for _, key in staged})},
    )  # fmt: skip
    session.execute(
        sa.insert(OutboxEvent),
        [
            {
                "id": envelope.id,
                "type": envelope.type,
                "occurred_at": envelope.occurred_at,
                "producer": envelope.producer,
                "request_id": envelope.request_id,
                "data": envelope.model_dump(mode="json")["data"],
                "traceparent": envelope.traceparent,
            }
            for envelope, _ in staged
        ],
    )
    session.info[_STAGED] = []
    session.info[_WRITTEN] = True


def _wake_local_relays(session: Session) -> None:
    if session.info.pop(_WRITTEN, False):
        for listener in list(_local_listeners):
            try:
                listener()
            except Exception:  # the change is committed: never fail its request over a wake-up
                logger.exception("outbox relay could not be woken; its poll will publish")


def _forget_staged(session: Session) -> None:
    session.info.pop(_STAGED, None)
    session.info.pop(_WRITTEN, None)
