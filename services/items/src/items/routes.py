"""HTTP routes of the items service, all under `/api/v1/items`."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from items import service
from items.deps import ChangedItem, ItemChange, ListScope, OwnedItem
from items.models import (
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
_NOT_FOUND_OR_STALE = _NOT_FOUND | _STALE
_NOT_ADMIN: dict[int | str, dict[str, str]] = {403: {"description": "`owner_id` needs an admin"}}


def _item_response(item: ItemPublic, *, status_code: int = 200, **headers: str) -> Response:
    """`item` with its `ETag`, the one place an item's ETag is made."""
    headers["ETag"] = entity_tag(item.id, item.version)
    return model_response(item, status_code=status_code, headers=headers)


# Each collection route also answers without the trailing slash: a redirect would drop the
# body of a POST for many clients, and would point past the gateway.
@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    summary="Create an item",
    response_model=ItemPublic,
)
@router.post("", status_code=status.HTTP_201_CREATED, include_in_schema=False)
async def create_item(
    item_in: ItemCreate, session: SessionDep, caller: Caller, request: Request
) -> Response:
    """Create an item owned by the caller; `Location` and `ETag` name the new item."""
    item = await service.create(session=session, owner_id=caller.user_id, item_in=item_in)
    location = request.app.url_path_for("read_item", item_id=str(item.id))
    return _item_response(item, status_code=status.HTTP_201_CREATED, Location=location)


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
    page = await service.get_all(
        database=database,
        owner_id=owner_id,
        q=q,
        tags=tag,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    return model_response(page)


@router.get("/{item_id}", summary="Read an item", response_model=ItemPublic, responses=_NOT_FOUND)
async def read_item(item: OwnedItem) -> Response:
    """One item with its `ETag`; another user's item is 404."""
    return _item_response(item)


async def _update(item_in: ItemCreate | ItemUpdate, change: ItemChange) -> Response:
    """What PUT and PATCH share; only their bodies differ."""
    item = await service.update(
        session=change.session, database=change.database, target=change.target, item_in=item_in
    )
    return _item_response(item)


#: What PUT and PATCH declare alike: the item they answer with, and how they fail.
_CHANGE_ROUTE: dict[str, Any] = {"response_model": ItemPublic, "responses": _NOT_FOUND_OR_STALE}


@router.put("/{item_id}", summary="Replace an item", **_CHANGE_ROUTE)
async def replace_item(item_in: ItemCreate, change: ChangedItem) -> Response:
    """Replace every field (those left out are reset); a stale `If-Match` is 412."""
    return await _update(item_in, change)


@router.patch("/{item_id}", summary="Update some fields of an item", **_CHANGE_ROUTE)
async def update_item(item_in: ItemUpdate, change: ChangedItem) -> Response:
    """Change only the fields sent; a stale `If-Match` is 412."""
    return await _update(item_in, change)


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an item",
    responses=_NOT_FOUND_OR_STALE,
)
async def delete_item(change: ChangedItem) -> Response:
    """Delete an item; a second DELETE is 404, a stale `If-Match` 412."""
    await service.delete(session=change.session, database=change.database, target=change.target)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
