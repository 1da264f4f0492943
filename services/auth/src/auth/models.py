"""Tables, schemas and field types of the auth service."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import sqlalchemy as sa
from pydantic import AfterValidator, BaseModel, EmailStr, StringConstraints, model_validator
from pydantic import Field as PydanticField
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from servicekit.db import metadata
from servicekit.events.outbox import register_outbox
from servicekit.fields import Text, bounded_text
from servicekit.listing import Page
from servicekit.timestamps import timestamp_field, utcnow

__all__ = ["metadata"]

register_outbox(metadata)  # auth publishes events


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


def _normalise_email(value: str) -> str:
    return value.strip().lower()


Email = Annotated[EmailStr, AfterValidator(_normalise_email)]
Password = Annotated[Text, StringConstraints(min_length=8, max_length=128)]
FullName = bounded_text(0, 100, strip=True, shown_to_others=True)


# ---- tables -------------------------------------------------------------------------------


class Account(SQLModel, table=True):
    __tablename__ = "account"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    #: Stored lower-cased: the unique index makes emails case-insensitive.
    email: str = Field(max_length=320, unique=True)
    password_hash: str = Field(max_length=255)
    full_name: str | None = Field(default=None, max_length=100)
    is_verified: bool = False
    is_active: bool = True
    roles: list[str] = Field(
        default_factory=lambda: [Role.USER.value],
        sa_type=ARRAY(sa.String(20)),  # type: ignore[call-overload]
    )
    #: Bumped by every credential change; a login verified against an older one mints nothing.
    credentials_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = timestamp_field(default_factory=utcnow)
    updated_at: datetime = timestamp_field(default_factory=utcnow)


class LoginSession(SQLModel, table=True):
    """One login; its refresh token rotates, and only the current one's hash is kept."""

    __tablename__ = "login_session"
    __table_args__ = (sa.Index("ix_login_session_user_id_live", "user_id", "revoked_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="account.id", ondelete="CASCADE")
    refresh_token_hash: str = Field(max_length=64)
    user_agent: str | None = Field(default=None, max_length=512)
    ip: str | None = Field(default=None, max_length=64)
    created_at: datetime = timestamp_field(default_factory=utcnow)
    last_used_at: datetime = timestamp_field(default_factory=utcnow)
    expires_at: datetime = timestamp_field()
    revoked_at: datetime | None = timestamp_field(default=None)


class TokenPurpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"


class OneTimeToken(SQLModel, table=True):
    """A mailed token (verification, reset): only its hash is stored, and it is spent once."""

    __tablename__ = "one_time_token"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="account.id", ondelete="CASCADE", index=True)
    purpose: str = Field(max_length=20)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = timestamp_field(default_factory=utcnow)
    expires_at: datetime = timestamp_field()
    used_at: datetime | None = timestamp_field(default=None)


class RevocationKind(StrEnum):
    SESSION = "session"
    USER = "user"


class Revocation(SQLModel, table=True):
    """Every revocation still in force, so Redis can be rebuilt if it ever loses its copy.

    No foreign key: a deleted account's tokens must stay revoked after the account is gone.
    """

    __tablename__ = "revocation"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    kind: str = Field(max_length=10)
    subject: uuid.UUID
    #: For a user: tokens issued at or before this Unix time are revoked.
    not_before: float | None = Field(default=None, sa_type=sa.Double)  # type: ignore[call-overload]
    expires_at: datetime = timestamp_field(index=True)


# ---- schemas ------------------------------------------------------------------------------


class AccountCreate(BaseModel):
    email: Email
    password: Password
    full_name: FullName | None = None  # type: ignore[valid-type]


class TokenForm(BaseModel):
    """The token endpoint's form, every field a `Text`: the OAuth2 password grant (FastAPI's
    `OAuth2PasswordRequestForm`; `grant_type` may be left out) or the refresh grant (RFC 6749 §6).

    FastAPI's own form takes plain strings, so a NUL in `username` used to reach PostgreSQL.
    """

    grant_type: Annotated[Text, StringConstraints(pattern="^(password|refresh_token)$")] | None = (
        None
    )
    username: Text | None = None
    password: Annotated[Text, PydanticField(json_schema_extra={"format": "password"})] | None = None
    refresh_token: Annotated[Text, StringConstraints(min_length=1, max_length=4096)] | None = None
    scope: Text = ""
    client_id: Text | None = None
    client_secret: (
        Annotated[Text, PydanticField(json_schema_extra={"format": "password"})] | None
    ) = None

    @model_validator(mode="after")
    def _has_the_grant_fields(self) -> "TokenForm":
        if self.is_refresh:
            if self.refresh_token is None:
                raise ValueError("grant_type refresh_token needs refresh_token")
        elif self.username is None or self.password is None:
            raise ValueError("the password grant needs username and password")
        return self

    @property
    def is_refresh(self) -> bool:
        return self.grant_type == "refresh_token"


class AccountPublic(BaseModel):
    """What anyone may see of an account: never the password hash."""

    id: uuid.UUID
    email: str
    full_name: str | None
    is_verified: bool
    is_active: bool
    roles: list[str]
    created_at: datetime


class AccountList(Page[AccountPublic]):
    pass


class AccountAdminUpdate(BaseModel):
    roles: list[Role] | None = Field(default=None, min_length=1, max_length=2)
    is_active: bool | None = None


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class RefreshRequest(BaseModel):
    refresh_token: Annotated[Text, StringConstraints(min_length=1, max_length=4096)]


class LogoutRequest(BaseModel):
    refresh_token: Annotated[Text, StringConstraints(min_length=1, max_length=4096)] | None = None


class SessionPublic(BaseModel):
    sid: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool


class SessionList(Page[SessionPublic]):
    pass


class OneTimeTokenRequest(BaseModel):
    token: Annotated[Text, StringConstraints(min_length=1, max_length=256)]


class PasswordForgot(BaseModel):
    email: Email


class PasswordReset(BaseModel):
    token: Annotated[Text, StringConstraints(min_length=1, max_length=256)]
    new_password: Password


class PasswordChange(BaseModel):
    current_password: Annotated[Text, StringConstraints(min_length=1, max_length=128)]
    new_password: Password


class AccountDelete(BaseModel):
    password: Annotated[Text, StringConstraints(min_length=1, max_length=128)]
