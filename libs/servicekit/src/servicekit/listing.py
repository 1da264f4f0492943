"""What every list route shares: the contract's paging bounds and a literal substring search."""

from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

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


def contains_pattern(text: str) -> str:
    """A LIKE pattern for `text` anywhere, with `%`, `_` and `\\` taken literally (escape `\\`)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
