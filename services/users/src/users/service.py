"""Business rules of the users service: one function per operation over the `profile` table,
each returning `ProfileRead`; reads through the read pool, writes through the session.

A profile can be born two ways, in either order: from the `user.registered` event
(with the email and a default name) or from the first `GET /me` (from the token alone).
Both are single `INSERT ... ON CONFLICT` statements on the primary key, so concurrent
arrivals never make two rows and never lose what the other wrote.
"""

import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from servicekit.db import Database, ReadQuery
from servicekit.errors import NotFound
from servicekit.events.erasures import is_erased
from servicekit.listing import PageQuery, contains_pattern, fetch_page
from servicekit.timestamps import utcnow
from users.models import DISPLAY_NAME_MAX, Profile, ProfileRead, ProfilesRead, ProfileUpdate

PROFILE_NOT_FOUND = "Profile not found"


def default_display_name(*, email: str, full_name: str | None) -> str:
    """The name shown until the owner picks one: the full name, else the email's local part."""
    name = (full_name or "").strip() or email.partition("@")[0].strip() or email
    return name[:DISPLAY_NAME_MAX]


_ONE = ReadQuery(sa.select(Profile).where(col(Profile.id) == sa.bindparam("user_id")))


async def _find(*, database: Database, user_id: uuid.UUID) -> ProfileRead | None:
    row = await database.fetch_one(_ONE, user_id=user_id)
    return None if row is None else ProfileRead.model_validate(dict(row))


async def get(*, database: Database, user_id: uuid.UUID) -> ProfileRead:
    """The profile of account `user_id`; 404 while it has none."""
    profile = await _find(database=database, user_id=user_id)
    if profile is None:
        raise NotFound(PROFILE_NOT_FOUND)
    return profile


async def get_or_create(
    *, session: AsyncSession, database: Database, user_id: uuid.UUID
) -> ProfileRead:
    """The caller's profile, created empty (no email: the token has none) on first sight."""
    profile = await _find(database=database, user_id=user_id)
    if profile is not None:
        return profile
    if await is_erased(session, user_id):  # a request authorised just before the deletion
        raise NotFound(PROFILE_NOT_FOUND)
    now = utcnow()
    await session.exec(
        insert(Profile)
        .values(id=user_id, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=[col(Profile.id)])
    )
    await session.commit()
    return await get(database=database, user_id=user_id)  # 404: `user.deleted` came in between


async def update(
    *, session: AsyncSession, user_id: uuid.UUID, profile_in: ProfileUpdate
) -> ProfileRead:
    """Change the fields sent, creating the profile first if it does not exist yet."""
    if await is_erased(session, user_id):
        raise NotFound(PROFILE_NOT_FOUND)
    values = profile_in.model_dump(exclude_unset=True)
    now = utcnow()
    statement = (
        insert(Profile)
        .values(id=user_id, created_at=now, updated_at=now, **values)
        .on_conflict_do_update(index_elements=[col(Profile.id)], set_={**values, "updated_at": now})
        .returning(Profile)
        .execution_options(populate_existing=True)
    )
    profile = (await session.exec(statement)).scalars().one()
    await session.commit()
    return ProfileRead.model_validate(profile)


_NEWEST_FIRST = (col(Profile.created_at).desc(), col(Profile.id).desc())
_SEARCH: sa.BindParameter[str] = sa.bindparam("pattern")
_ALL = PageQuery(Profile, order_by=_NEWEST_FIRST)
_SEARCHED = PageQuery(
    Profile,
    where=(
        sa.or_(
            col(Profile.display_name).ilike(_SEARCH, escape="\\"),
            col(Profile.email).ilike(_SEARCH, escape="\\"),
        ),
    ),
    order_by=_NEWEST_FIRST,
)


async def get_all(
    *, database: Database, q: str | None = None, limit: int, offset: int
) -> ProfilesRead:
    """One page of profiles, newest first, whose name or email contains `q` (any case)."""
    query, pattern = (_SEARCHED, contains_pattern(q)) if q else (_ALL, None)
    return await fetch_page(
        database, query, ProfilesRead, limit=limit, offset=offset, pattern=pattern
    )


async def record_registration(
    *, session: AsyncSession, user_id: uuid.UUID, email: str, full_name: str | None
) -> None:
    """Fill in the email, and a default name unless one is set already; the caller commits.

    Applying it twice, or after `GET /me` created the profile, or after its owner chose a
    name, gives the same profile.
    """
    now = utcnow()
    statement = insert(Profile).values(
        id=user_id,
        email=email,
        display_name=default_display_name(email=email, full_name=full_name),
        created_at=now,
        updated_at=now,
    )
    await session.exec(
        statement.on_conflict_do_update(
            index_elements=[col(Profile.id)],
            set_={
                "email": statement.excluded.email,
                "display_name": sa.func.coalesce(
                    col(Profile.display_name), statement.excluded.display_name
                ),
                "updated_at": now,
            },
        )
    )


async def erase(*, session: AsyncSession, user_id: uuid.UUID) -> None:
    """Delete the profile of a deleted account; the caller commits."""
    await session.exec(sa.delete(Profile).where(col(Profile.id) == user_id))
