"""Business rules of the items service: one function per operation, each returning `ItemPublic`.

Reads go through the read pool (`Database.fetch_one`, `fetch_page`), changes through the
session, one transaction each, with the change's event staged in the outbox in the same
transaction. `owner_id=None` means "any owner" (an administrator); otherwise every query is
scoped to that owner in SQL, so another user's item is simply not found: `get` is where a
missing item becomes a 404.
"""

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from items.models import (
    Item,
    ItemCreate,
    ItemPublic,
    ItemSort,
    ItemsPublic,
    ItemUpdate,
    version_in_tag,
)
from items.settings import settings
from servicekit.db import Database, ReadQuery
from servicekit.errors import NotFound, PreconditionFailed, Unauthorized
from servicekit.events.erasures import is_erased
from servicekit.events.outbox import add_event
from servicekit.listing import PageQuery, contains_pattern, fetch_page
from servicekit.timestamps import utcnow

ITEM_NOT_FOUND = "Item not found"

#: `-x` is exactly the reverse of `x`, so one index serves both directions; ties are broken by
#: id so that pages never overlap. PostgreSQL sorts NULL above every value: an item without a
#: price comes last under `price` and first under `-price`.
_ORDER: dict[ItemSort, tuple[Any, ...]] = {
    ItemSort.CREATED_AT: (col(Item.created_at).asc(), col(Item.id).asc()),
    ItemSort.CREATED_AT_DESC: (col(Item.created_at).desc(), col(Item.id).desc()),
    ItemSort.TITLE: (col(Item.title).asc(), col(Item.id).asc()),
    ItemSort.TITLE_DESC: (col(Item.title).desc(), col(Item.id).desc()),
    ItemSort.PRICE: (col(Item.price).asc(), col(Item.id).asc()),
    ItemSort.PRICE_DESC: (col(Item.price).desc(), col(Item.id).desc()),
}


@dataclass(frozen=True, slots=True)
class ItemTarget:
    """The item a change names: its id, whose it must be (None: anyone's, for an admin), and
    the strong entity tags of `If-Match` (None: no condition)."""

    item_id: uuid.UUID
    owner_id: uuid.UUID | None
    if_match: frozenset[str] | None = None


def _scope(owner_id: uuid.UUID | None) -> ColumnElement[bool]:
    return sa.true() if owner_id is None else col(Item.owner_id) == owner_id


def _version_named(target: ItemTarget) -> ColumnElement[bool]:
    """The `If-Match` condition as SQL, so the check and the change are one statement."""
    if target.if_match is None:
        return sa.true()
    versions = {version_in_tag(tag, target.item_id) for tag in target.if_match} - {None}
    return col(Item.version).in_(versions) if versions else sa.false()


def _targeted(target: ItemTarget) -> tuple[ColumnElement[bool], ...]:
    """The WHERE of a change: this item, if the caller may change it, at a version named."""
    return col(Item.id) == target.item_id, _scope(target.owner_id), _version_named(target)


def _stage(
    session: AsyncSession, event_type: str, *, item_id: uuid.UUID, owner_id: uuid.UUID, version: int
) -> None:
    """Stage an item's event. `version` is the item's after the change (the last one, for
    `item.deleted`): a consumer that sees one item's events out of order (several consumer
    replicas, a redelivery) keeps the highest version, and a deletion over every version."""
    add_event(
        session,
        type=event_type,
        producer=settings.SERVICE_NAME,
        data={"item_id": str(item_id), "owner_id": str(owner_id), "version": version},
        aggregate=str(item_id),
    )


_ONE = sa.select(Item).where(col(Item.id) == sa.bindparam("item_id"))
_ONE_OWNED = ReadQuery(_ONE.where(col(Item.owner_id) == sa.bindparam("owner_id")))
_ONE_ANY = ReadQuery(_ONE)


async def get(*, database: Database, item_id: uuid.UUID, owner_id: uuid.UUID | None) -> ItemPublic:
    """The item, if it exists and `owner_id` (when given) owns it; else 404, never 403."""
    query = _ONE_ANY if owner_id is None else _ONE_OWNED
    row = await database.fetch_one(query, item_id=item_id, owner_id=owner_id)
    if row is None:
        raise NotFound(ITEM_NOT_FOUND)
    return ItemPublic.model_validate(dict(row))


@functools.cache
def _page_query(*, scoped: bool, searched: bool, tagged: bool, sort: ItemSort) -> PageQuery:
    """The list for one combination of filters, compiled on first use.

    Values are parameters, never part of the SQL, so there are at most 2 x 2 x 2 x 6 shapes.
    """
    conditions: list[ColumnElement[bool]] = []
    if scoped:
        conditions.append(col(Item.owner_id) == sa.bindparam("owner_id"))
    if searched:
        # ILIKE, not lower(): the trigram index on title serves it directly.
        conditions.append(col(Item.title).ilike(sa.bindparam("pattern"), escape="\\"))
    if tagged:  # `@>`, GIN-indexed
        conditions.append(col(Item.tags).contains(sa.bindparam("tags", type_=ARRAY(sa.Text))))
    return PageQuery(Item, where=tuple(conditions), order_by=_ORDER[sort])


async def get_all(
    *,
    database: Database,
    owner_id: uuid.UUID | None,
    q: str | None = None,
    tags: Sequence[str] = (),
    sort: ItemSort = ItemSort.CREATED_AT_DESC,
    limit: int,
    offset: int,
) -> ItemsPublic:
    """One page of items matching every filter given, and how many match in all."""
    query = _page_query(scoped=owner_id is not None, searched=bool(q), tagged=bool(tags), sort=sort)
    return await fetch_page(
        database,
        query,
        ItemsPublic,
        limit=limit,
        offset=offset,
        owner_id=owner_id,
        pattern=contains_pattern(q) if q else None,
        tags=list(tags),
    )


async def create(*, session: AsyncSession, owner_id: uuid.UUID, item_in: ItemCreate) -> ItemPublic:
    """Store a new item owned by `owner_id` and stage `item.created`."""
    if await is_erased(session, owner_id):  # a request authorised just before the deletion
        raise Unauthorized("Account no longer available")
    now = utcnow()
    item = Item.model_validate(
        item_in, update={"owner_id": owner_id, "created_at": now, "updated_at": now}
    )
    session.add(item)
    _stage(session, "item.created", item_id=item.id, owner_id=owner_id, version=item.version)
    await session.commit()
    return ItemPublic.model_validate(item)


async def update(
    *,
    session: AsyncSession,
    database: Database,
    target: ItemTarget,
    item_in: ItemCreate | ItemUpdate,
) -> ItemPublic:
    """Replace (ItemCreate) or patch (ItemUpdate) an item, bump its version, stage `item.updated`.

    The ownership and `If-Match` checks are part of the UPDATE itself, so two writers holding
    the same ETag cannot both succeed.
    """
    values = item_in.model_dump(exclude_unset=isinstance(item_in, ItemUpdate))
    statement = (
        sa.update(Item)
        .where(*_targeted(target))
        .values(**values, version=col(Item.version) + 1, updated_at=utcnow())
        .returning(Item)
        .execution_options(populate_existing=True)
    )
    item: Item = await _change(session, database, target, statement)
    _stage(session, "item.updated", item_id=item.id, owner_id=item.owner_id, version=item.version)
    await session.commit()
    return ItemPublic.model_validate(item)


async def delete(*, session: AsyncSession, database: Database, target: ItemTarget) -> None:
    """Delete an item (checked as `update` does) and stage `item.deleted`."""
    statement = sa.delete(Item).where(*_targeted(target)).returning(Item)
    item: Item = await _change(session, database, target, statement)
    _stage(session, "item.deleted", item_id=item.id, owner_id=item.owner_id, version=item.version)
    await session.commit()


async def _change(
    session: AsyncSession, database: Database, target: ItemTarget, statement: UpdateBase
) -> Any:
    """What a conditional change RETURNING one row returns; when it touched nothing, why:
    404 if the caller cannot see the item, else 412 (`If-Match` names an old version)."""
    changed = (await session.exec(statement)).scalars().one_or_none()
    if changed is None:
        await get(database=database, item_id=target.item_id, owner_id=target.owner_id)
        raise PreconditionFailed()
    return changed


async def erase_owner(*, session: AsyncSession, owner_id: uuid.UUID) -> int:
    """Delete every item of `owner_id`, staging `item.deleted` for each; the caller commits."""
    statement = (
        sa.delete(Item)
        .where(col(Item.owner_id) == owner_id)
        .returning(col(Item.id), col(Item.version))
    )
    erased = (await session.exec(statement)).all()
    for item_id, version in erased:
        _stage(session, "item.deleted", item_id=item_id, owner_id=owner_id, version=version)
    return len(erased)
