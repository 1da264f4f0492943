"""What every list route shares: the contract's paging bounds, the `Page` shape, one page and
its total read through the read pool (`PageQuery`), and a literal substring search."""

from typing import Annotated, Any, Generic, TypeVar

import sqlalchemy as sa
from fastapi import Query
from pydantic import BaseModel
from sqlalchemy.sql.elements import ColumnElement

from servicekit.db import Database, ReadQuery

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


#: The page's extra column: how many rows match in all.
_TOTAL = "page_total__"


class PageQuery:
    """A list's count and page, compiled once: the rows of `table` matching `where`, in
    `order_by` order, as whole rows or as `columns` (labelled as the page's items name them).

    Values go in as named parameters (`sa.bindparam("owner_id")`), never into the statement,
    so one `PageQuery` serves every request of its shape; build one per shape, at import time
    or under `functools.cache`.
    """

    def __init__(
        self,
        table: Any,
        *,
        columns: tuple[Any, ...] = (),
        where: tuple[ColumnElement[bool], ...] = (),
        order_by: tuple[ColumnElement[Any], ...],
    ) -> None:
        self.count = ReadQuery(sa.select(sa.func.count()).select_from(table).where(*where))
        # The total rides along with the page (a window count is taken before LIMIT/OFFSET):
        # one round trip instead of two, and the total and the page agree.
        self.page = ReadQuery(
            sa.select(*(columns or (table,)), sa.func.count().over().label(_TOTAL))
            .where(*where)
            .order_by(*order_by)
            .limit(sa.bindparam("limit"))
            .offset(sa.bindparam("offset"))
        )


async def count_rows(database: Database, query: PageQuery, **params: Any) -> int:
    """How many rows `query` matches in all."""
    counted = await database.fetch_one(query.count, **params)
    return int(counted[0]) if counted is not None else 0


async def fetch_rows(
    database: Database, query: PageQuery, *, limit: int, offset: int, **params: Any
) -> tuple[list[dict[str, Any]], int]:
    """One page of `query`'s rows, and how many rows it matches in all.

    A page past the end carries no total, so only then is the count read on its own.
    """
    records = await database.fetch_all(query.page, limit=limit, offset=offset, **params)
    if records:
        total = int(records[0][_TOTAL])
    elif offset == 0:
        total = 0
    else:
        total = await count_rows(database, query, **params)
    rows = [dict(record) for record in records]
    for row in rows:
        del row[_TOTAL]
    return rows, total


P = TypeVar("P", bound=Page[Any])


async def fetch_page(
    database: Database,
    query: PageQuery,
    page_type: type[P],
    *,
    limit: int,
    offset: int,
    **params: Any,
) -> P:
    """One page of `query`'s rows as `page_type` (each row validated as its item type)."""
    rows, total = await fetch_rows(database, query, limit=limit, offset=offset, **params)
    return page_type(items=rows, total=total, limit=limit, offset=offset)


def contains_pattern(text: str) -> str:
    """A LIKE pattern for `text` anywhere, with `%`, `_` and `\\` taken literally (escape `\\`)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
