"""Tables, schemas and field types of the users service."""

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import sqlalchemy as sa
from pydantic import (
    AfterValidator,
    HttpUrl,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from sqlmodel import Field, SQLModel

from servicekit.db import metadata
from servicekit.events.erasures import register_erased_accounts
from servicekit.events.processed import register_processed_events
from servicekit.fields import Text, bounded_text
from servicekit.listing import Page
from servicekit.timestamps import timestamp_field, utcnow

__all__ = ["metadata"]

register_processed_events(metadata)  # users consumes events
register_erased_accounts(metadata)  # deletions are final, whatever the event order

DISPLAY_NAME_MAX = 64
AVATAR_URL_MAX = 2048

# `bounded_text` builds its type at run time; a type checker only needs to know these are strings.
if TYPE_CHECKING:
    DisplayName = str
    Bio = str
    SearchText = str
else:
    DisplayName = bounded_text(1, DISPLAY_NAME_MAX, strip=True, shown_to_others=True)
    Bio = bounded_text(0, 500, shown_to_others="lines")
    SearchText = bounded_text(0, 320)

_HTTP_URL = TypeAdapter(HttpUrl)


def _http_url(value: str) -> str:
    """An absolute http(s) URL, normalised as pydantic spells it (`HTTPS://X.org` is `https://x.org/`)."""
    try:
        url = str(_HTTP_URL.validate_python(value))
    except ValidationError as exc:
        raise ValueError(exc.errors()[0]["msg"]) from None
    if len(url) > AVATAR_URL_MAX:
        raise ValueError(f"URL should have at most {AVATAR_URL_MAX} characters")
    return url


#: `Text` first: a NUL or a lone surrogate is refused, not silently dropped by the URL parser.
AvatarUrl = Annotated[
    Text,
    AfterValidator(_http_url),
    WithJsonSchema({"type": "string", "format": "uri", "maxLength": AVATAR_URL_MAX}),
]


# ---- table ---------------------------------------------------------------------------------


class ProfileBase(SQLModel):
    display_name: DisplayName | None = Field(default=None, sa_type=sa.String(DISPLAY_NAME_MAX))
    bio: Bio | None = Field(default=None, sa_type=sa.String(500))
    avatar_url: AvatarUrl | None = Field(default=None, sa_type=sa.String(AVATAR_URL_MAX))


class Profile(ProfileBase, table=True):
    """One per account, keyed by the account id; `email` stays null until `user.registered`."""

    __tablename__ = "profile"
    __table_args__ = (
        # The admin list: newest first, ties broken by id, and `q` over name and email (pg_trgm).
        sa.Index("ix_profile_created_at", "created_at", "id"),
        sa.Index(
            "ix_profile_display_name_trgm",
            "display_name",
            postgresql_using="gin",
            postgresql_ops={"display_name": "gin_trgm_ops"},
        ),
        sa.Index(
            "ix_profile_email_trgm",
            "email",
            postgresql_using="gin",
            postgresql_ops={"email": "gin_trgm_ops"},
        ),
    )

    id: uuid.UUID = Field(primary_key=True)
    email: str | None = Field(default=None, sa_type=sa.String(320))
    created_at: datetime = timestamp_field(default_factory=utcnow)
    updated_at: datetime = timestamp_field(default_factory=utcnow)


# ---- schemas -------------------------------------------------------------------------------


class ProfileUpdate(SQLModel):
    """PATCH /me: only the fields sent change; `bio` and `avatar_url` may be cleared with null."""

    display_name: DisplayName | None = None
    bio: Bio | None = None
    avatar_url: AvatarUrl | None = None

    @field_validator("display_name")
    @classmethod
    def _not_null(cls, value: str | None) -> str:
        # Runs only for a value sent: leaving the name out is fine, sending null is not.
        if value is None:
            raise ValueError("may be left out but not null")
        return value


class ProfilePublic(SQLModel):
    """What any signed-in user may see of someone: never the email."""

    id: uuid.UUID
    display_name: str | None
    bio: str | None
    avatar_url: str | None


class ProfileRead(ProfilePublic):
    """The whole profile, for its owner and for administrators."""

    email: str | None
    created_at: datetime
    updated_at: datetime


class ProfilesRead(Page[ProfileRead]):
    pass
