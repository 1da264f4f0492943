"""Dependencies of the items routes: who may see what, the `If-Match` precondition, and what
a change (PUT, PATCH, DELETE) names."""

import re
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query
from sqlmodel.ext.asyncio.session import AsyncSession

from items import service
from items.models import ItemPublic
from servicekit.auth import Caller, Principal
from servicekit.db import Database, DatabaseDep, SessionDep
from servicekit.errors import Forbidden

_STRONG_TAG = re.compile(r'(W/)?("[^"]*")')


def owner_scope(caller: Principal) -> uuid.UUID | None:
    """Whose items the caller may touch: their own, or anyone's for an administrator."""
    return None if caller.is_admin else caller.user_id


async def valid_owned_item(item_id: uuid.UUID, database: DatabaseDep, caller: Caller) -> ItemPublic:
    """The item named in the path, as long as the caller may see it (else 404, never 403)."""
    return await service.get(database=database, item_id=item_id, owner_id=owner_scope(caller))


async def list_scope(
    caller: Caller,
    owner_id: Annotated[
        uuid.UUID | None, Query(description="Administrators only: that user's items")
    ] = None,
) -> uuid.UUID | None:
    """The owner a list is limited to: the caller, or for an admin `owner_id` (None: all)."""
    if caller.is_admin:
        return owner_id
    if owner_id is not None:
        raise Forbidden("Only administrators may list another user's items")
    return caller.user_id


async def if_match(
    if_match: Annotated[
        str | None,
        Header(description='An ETag from an earlier response, or "*"; stale: 412'),
    ] = None,
) -> frozenset[str] | None:
    """The strong entity tags in `If-Match`; None when there is no condition (absent or `*`).

    Weak tags never match (RFC 9110 compares strongly for `If-Match`), and a malformed
    header matches nothing rather than everything.
    """
    if if_match is None or if_match.strip() == "*":
        return None
    return frozenset(tag for weak, tag in _STRONG_TAG.findall(if_match) if not weak)


IfMatch = Annotated[frozenset[str] | None, Depends(if_match)]


@dataclass(frozen=True, slots=True)
class ItemChange:
    """What PUT, PATCH and DELETE need besides a body: the item they name, as the caller may
    change it, and the session and read pool to change it with."""

    target: service.ItemTarget
    session: AsyncSession
    database: Database


async def item_change(
    item_id: uuid.UUID,
    caller: Caller,
    precondition: IfMatch,
    session: SessionDep,
    database: DatabaseDep,
) -> ItemChange:
    target = service.ItemTarget(item_id, owner_scope(caller), precondition)
    return ItemChange(target=target, session=session, database=database)


OwnedItem = Annotated[ItemPublic, Depends(valid_owned_item)]
ListScope = Annotated[uuid.UUID | None, Depends(list_scope)]
ChangedItem = Annotated[ItemChange, Depends(item_change)]
