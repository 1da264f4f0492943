"""Erased accounts, remembered by every service that holds per-account data.

Events about one account can arrive in any order after a crash (a killed consumer's
pending `user.registered` handled after the `user.deleted` behind it), and a request
authorised a moment before the deletion can still be writing. So the handler of the
erasing event records the account here before it erases, and whatever would write for
an account (other handlers, routes that create rows) asks `is_erased` first, in its own
transaction. A per-account advisory lock orders the two: writers hold it shared until
they commit, the eraser takes it exclusively, so an eraser waits for a writer already
past its check, and a writer that checks after the eraser committed sees the record.
"""

import uuid
from collections.abc import Mapping
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Field, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from servicekit.events.envelope import Envelope, Handler
from servicekit.events.tables import PlatformTable, copy_into
from servicekit.timestamps import timestamp_field, utcnow

#: The first key of the two-key advisory locks taken here (the other is the account's hash),
#: so they never meet a lock taken elsewhere with one 64-bit key.
_LOCK_CLASS = 0x45524153  # "ERAS"


class ErasedAccount(PlatformTable, table=True):
    """Accounts whose deletion this service has seen: nothing is written for them again."""

    __tablename__ = "erased_account"

    user_id: uuid.UUID = Field(primary_key=True)
    erased_at: datetime = timestamp_field()


def register_erased_accounts(metadata: sa.MetaData) -> sa.Table:
    """Put `erased_account` in a service's metadata, so its migrations hold it."""
    return copy_into(metadata, ErasedAccount)


async def _lock(session: AsyncSession, user_id: uuid.UUID, *, shared: bool) -> None:
    """The account's advisory lock, held until the transaction ends."""
    function = sa.func.pg_advisory_xact_lock_shared if shared else sa.func.pg_advisory_xact_lock
    await session.exec(select(function(_LOCK_CLASS, sa.func.hashtext(str(user_id)))))


async def is_erased(session: AsyncSession, user_id: uuid.UUID) -> bool:
    """True if the account was erased; else no erasure starts until this transaction ends."""
    await _lock(session, user_id, shared=True)
    found = await session.exec(
        select(col(ErasedAccount.user_id)).where(col(ErasedAccount.user_id) == user_id)
    )
    return found.first() is not None


async def record_erasure(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Remember the account as erased, once every writer already past `is_erased` is done."""
    await _lock(session, user_id, shared=False)
    await session.exec(
        insert(ErasedAccount)
        .values(user_id=user_id, erased_at=utcnow())
        .on_conflict_do_nothing(index_elements=[col(ErasedAccount.user_id)])
    )


def _account_of(envelope: Envelope) -> uuid.UUID | None:
    value = envelope.data.get("user_id")
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None  # the handler's own validation will say what is wrong


def guard_erased_accounts(handlers: Mapping[str, Handler], *, erasing: str) -> dict[str, Handler]:
    """`handlers`, made final about erasures: the `erasing` event's handler records the
    account (`data.user_id`) before it erases, every other handler does nothing for an
    account already recorded."""

    def guarded(event_type: str, handler: Handler) -> Handler:
        async def handle(session: AsyncSession, envelope: Envelope) -> None:
            user_id = _account_of(envelope)
            if user_id is not None:
                if event_type == erasing:
                    await record_erasure(session, user_id)
                elif await is_erased(session, user_id):
                    return
            await handler(session, envelope)

        return handle

    return {event_type: guarded(event_type, handler) for event_type, handler in handlers.items()}
