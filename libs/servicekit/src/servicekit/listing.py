"""What every list route shares: the contract's paging bounds, the page and its total, and a
literal substring search."""

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

#: PostgreSQL's bigint: a larger OFFSET would be a driver error, so it is a 422 instead.
MAX_OFFSET = 2**63 - 1

Limit = Annotated[int, Query(ge=1, le=100, description="Page size, 1 to 100")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip")]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """The contract's list shape. Subclass it per resource (`class ItemsPublic(Page[ItemPublic])`)
    so the OpenAPI schema keeps a readable name."""

    items: list[T]
    total: int
    limit: int
    offset: int


async def fetch_page(
    session: AsyncSession,
    query: SelectOfScalar[T],
    *,
    order_by: tuple[ColumnElement[Any], ...],
    limit: int,
    offset: int,
) -> tuple[list[T], int]:
    """One page of `query` in `order_by` order, and how many rows `query` matches in all."""
    total = (await session.exec(select(func.count()).select_from(query.subquery()))).one()
    page = await session.exec(query.order_by(*order_by).limit(limit).offset(offset))
    return list(page.all()), total


def contains_pattern(text: str) -> str:
    """A LIKE pattern for `text` anywhere, with `%`, `_` and `\\` taken literally (escape `\\`)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
