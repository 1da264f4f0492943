"""Tables, schemas and field types of the items service, and its ETags (`entity_tag`,
`version_in_tag`)."""

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import sqlalchemy as sa
from pydantic import AfterValidator, field_validator
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from servicekit.db import metadata
from servicekit.events.erasures import register_erased_accounts
from servicekit.events.outbox import register_outbox
from servicekit.events.processed import register_processed_events
from servicekit.fields import bounded_text
from servicekit.listing import Page
from servicekit.timestamps import timestamp_field, utcnow

__all__ = ["metadata"]

# items publishes events and consumes them.
register_outbox(metadata)
register_processed_events(metadata)
register_erased_accounts(metadata)  # deletions are final, whatever the event order


MAX_TAGS = 20

# `bounded_text` builds its type at run time; a type checker only needs to know these are strings.
if TYPE_CHECKING:
    Title = str
    Description = str
    RawTag = str
    SearchText = str
else:
    Title = bounded_text(1, 200, strip=True, shown_to_others=True)
    Description = bounded_text(0, 5000, shown_to_others="lines")
    RawTag = bounded_text(1, 32, strip=True, shown_to_others=True)
    SearchText = bounded_text(0, 200)

#: Tags are case-insensitive: stored and matched lower-cased, so "Red" and "red" are one tag.
Tag = Annotated[RawTag, AfterValidator(str.lower)]

CENT = Decimal("0.01")


def _in_cents(price: Decimal) -> Decimal:
    """One spelling per amount, as the column keeps it: "5" is "5.00", "-0" is "0.00"."""
    return (price + 0).quantize(CENT)


#: NUMERIC(12, 2): up to 9,999,999,999.99; more decimals are refused, not rounded.
#: Infinity and NaN (and 1e999, which JSON parsing turns into infinity) are refused too:
#: pydantic's Decimal refuses them unless told otherwise.
Price = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2), AfterValidator(_in_cents)]


def _unique(tags: list[str]) -> list[str]:
    """Drop repeats, keeping the first occurrence's position."""
    return list(dict.fromkeys(tags))


Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS), AfterValidator(_unique)]


class ItemSort(StrEnum):
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    TITLE = "title"
    TITLE_DESC = "-title"
    PRICE = "price"
    PRICE_DESC = "-price"


# ---- table ---------------------------------------------------------------------------------


class ItemBase(SQLModel):
    title: Title = Field(sa_type=sa.String(200))
    description: Description | None = Field(default=None, sa_type=sa.String(5000))
    price: Price | None = Field(default=None, sa_type=sa.Numeric(12, 2))
    tags: Tags = Field(default_factory=list, sa_type=ARRAY(sa.Text))


class Item(ItemBase, table=True):
    __tablename__ = "item"
    __table_args__ = (
        sa.CheckConstraint("price >= 0", name="price_not_negative"),
        # Every list is one owner's items unless an admin asks for all; each sort has an index
        # with the owner first (ties broken by id so pages never overlap) and one without.
        sa.Index("ix_item_owner_id_created_at", "owner_id", "created_at", "id"),
        sa.Index("ix_item_owner_id_title", "owner_id", "title", "id"),
        sa.Index("ix_item_owner_id_price", "owner_id", "price", "id"),
        sa.Index("ix_item_created_at", "created_at", "id"),
        sa.Index("ix_item_title", "title", "id"),
        sa.Index("ix_item_price", "price", "id"),
        # `tags @> ARRAY[...]`
        sa.Index("ix_item_tags", "tags", postgresql_using="gin"),
        # `title ILIKE '%q%'` (pg_trgm)
        sa.Index(
            "ix_item_title_trgm",
            "title",
            postgresql_using="gin",
            postgresql_ops={"title": "gin_trgm_ops"},
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID
    created_at: datetime = timestamp_field(default_factory=utcnow)
    updated_at: datetime = timestamp_field(default_factory=utcnow)
    #: Bumped by every change; the ETag is derived from it and `If-Match` compares it.
    version: int = 1


def entity_tag(item_id: uuid.UUID, version: int) -> str:
    """A strong ETag: it changes whenever the item does, and never names another item."""
    return f'"{item_id.hex}-{version}"'


def version_in_tag(tag: str, item_id: uuid.UUID) -> int | None:
    """The version of this item that `tag` names, if it is exactly one of our ETags."""
    digits = tag.removeprefix(f'"{item_id.hex}-').removesuffix('"')
    if not (digits.isascii() and digits.isdigit() and len(digits) < 10):
        return None
    version = int(digits)
    return version if entity_tag(item_id, version) == tag else None


# ---- schemas -------------------------------------------------------------------------------


class ItemCreate(ItemBase):
    """A new item, and the body of PUT (a full replace: what is left out is reset).

    Unknown fields (`id`, `version`... from a representation sent back) are ignored.
    """


class ItemUpdate(SQLModel):
    """PATCH: only the fields sent change; `description` and `price` may be cleared with null."""

    title: Title | None = None
    description: Description | None = None
    price: Price | None = None
    tags: Tags | None = None

    @field_validator("title", "tags")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Runs only for values sent: leaving a field out is fine, sending null is not.
        if value is None:
            raise ValueError("may be left out but not null")
        return value


class ItemPublic(ItemBase):
    id: uuid.UUID
    owner_id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    version: int


class ItemsPublic(Page[ItemPublic]):
    pass
