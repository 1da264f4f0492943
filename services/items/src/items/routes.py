"""HTTP routes of the items service, all under `/api/v1/items`."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from items import service
from items.deps import IfMatch, ListScope, OwnedItem, owner_scope
from items.models import (
    Item,
    ItemCreate,
    ItemPublic,
    ItemSort,
    ItemsPublic,
    ItemUpdate,
    SearchText,
    Tag,
    entity_tag,
)
from servicekit.auth import Caller
from servicekit.db import DatabaseDep, SessionDep
from servicekit.listing import Limit, Offset
from servicekit.responses import model_response

router = APIRouter(tags=["items"])

# Documented answers besides the success and 422 (every route also answers 401 without a token).
_NOT_FOUND: dict[int | str, dict[str, str]] = {404: {"description": "No such item, or not yours"}}
_STALE: dict[int | str, dict[str, str]] = {412: {"description": "`If-Match` names an old version"}}
_NOT_ADMIN: dict[int | str, dict[str, str]] = {403: {"description": "`owner_id` needs an admin"}}


def _with_etag(response: Response, item: Item) -> ItemPublic:
    response.headers["ETag"] = item.etag
    return ItemPublic.model_validate(item)


# Each collection route also answers without the trailing slash: a redirect would drop the
# body of a POST for many clients, and would point past the gateway.
@router.post("/", status_code=status.HTTP_201_CREATED, summary="Create an item")
@router.post("", status_code=status.HTTP_201_CREATED, include_in_schema=False)
async def create_item(
    item_in: ItemCreate, session: SessionDep, caller: Caller, request: Request, response: Response
) -> ItemPublic:
    """Create an item owned by the caller; `Location` and `ETag` name the new item."""
    item = await service.create(session=session, owner_id=caller.user_id, item_in=item_in)
    response.headers["Location"] = request.app.url_path_for("read_item", item_id=str(item.id))
    return _with_etag(response, item)


@router.get("/", summary="List items", response_model=ItemsPublic, responses=_NOT_ADMIN)
@router.get("", include_in_schema=False)
async def list_items(
    database: DatabaseDep,
    owner_id: ListScope,
    q: Annotated[SearchText | None, Query(description="Part of the title, any case")] = None,
    tag: Annotated[
        list[Tag], Query(description="Items carrying every tag given (repeatable)")
    ] = [],  # noqa: B006 - FastAPI copies query defaults
    sort: ItemSort = ItemSort.CREATED_AT_DESC,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Response:
    """The caller's items (an administrator's: everyone's, or `owner_id`'s), newest first."""
    items, total = await service.get_all(
        database=database,
        owner_id=owner_id,
        q=q,
        tags=tag,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    return model_response(ItemsPublic(items=items, total=total, limit=limit, offset=offset))


@router.get("/{item_id}", summary="Read an item", response_model=ItemPublic, responses=_NOT_FOUND)
async def read_item(item: OwnedItem) -> Response:
    """One item with its `ETag`; another user's item is 404."""
    return model_response(item, headers={"ETag": entity_tag(item.id, item.version)})


@router.put("/{item_id}", summary="Replace an item", responses=_NOT_FOUND | _STALE)
async def replace_item(
    item_id: uuid.UUID,
    item_in: ItemCreate,
    session: SessionDep,
    caller: Caller,
    precondition: IfMatch,
    response: Response,
) -> ItemPublic:
    """Replace every field (those left out are reset); a stale `If-Match` is 412."""
    item = await service.update(
        session=session,
        item_id=item_id,
        owner_id=owner_scope(caller),
        item_in=item_in,
        if_match=precondition,
    )
    return _with_etag(response, item)


@router.patch("/{item_id}", summary="Update some fields of an item", responses=_NOT_FOUND | _STALE)
async def update_item(
    item_id: uuid.UUID,
    item_in: ItemUpdate,
    session: SessionDep,
    caller: Caller,
    precondition: IfMatch,
    response: Response,
) -> ItemPublic:
    """Change only the fields sent; a stale `If-Match` is 412."""
    item = await service.update(
        session=session,
        item_id=item_id,
        owner_id=owner_scope(caller),
        item_in=item_in,
        if_match=precondition,
    )
    return _with_etag(response, item)


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an item",
    responses=_NOT_FOUND | _STALE,
)
async def delete_item(
    item_id: uuid.UUID, session: SessionDep, caller: Caller, precondition: IfMatch
) -> Response:
    """Delete an item; a second DELETE is 404, a stale `If-Match` 412."""
    await service.delete(
        session=session, item_id=item_id, owner_id=owner_scope(caller), if_match=precondition
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
