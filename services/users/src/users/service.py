"""Business rules of the users service: small functions over the `profile` table.

A profile can be born two ways, in either order: from the `user.registered` event
(with the email and a default name) or from the first `GET /me` (from the token alone).
Both are single `INSERT ... ON CONFLICT` statements on the primary key, so concurrent
arrivals never make two rows and never lose what the other wrote.
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from servicekit.errors import NotFound
from servicekit.listing import contains_pattern, fetch_page
from users.models import DISPLAY_NAME_MAX, Profile, ProfileUpdate, utcnow

PROFILE_NOT_FOUND = "Profile not found"


def default_display_name(*, email: str, full_name: str | None) -> str:
    """The name shown until the owner picks one: the full name, else the email's local part."""
    name = (full_name or "").strip() or email.partition("@")[0].strip() or email
    return name[:DISPLAY_NAME_MAX]


async def get(*, session: AsyncSession, user_id: uuid.UUID) -> Profile | None:
    """The profile of account `user_id`, if it has one yet."""
    return (await session.exec(select(Profile).where(col(Profile.id) == user_id))).one_or_none()


async def get_or_create(*, session: AsyncSession, user_id: uuid.UUID) -> Profile:
    """The caller's profile, created empty (no email: the token has none) on first sight."""
    profile = await get(session=session, user_id=user_id)
    if profile is not None:
        return profile
    now = utcnow()
    await session.exec(
        insert(Profile)
        .values(id=user_id, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=[col(Profile.id)])
    )
    await session.commit()
    profile = await get(session=session, user_id=user_id)
    if profile is None:  # `user.deleted` erased it in between
        raise NotFound(PROFILE_NOT_FOUND)
    return profile


async def update(
    *, session: AsyncSession, user_id: uuid.UUID, profile_in: ProfileUpdate
) -> Profile:
    """Change the fields sent, creating the profile first if it does not exist yet."""
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
    return profile


async def get_all(
    *, session: AsyncSession, q: str | None = None, limit: int, offset: int
) -> tuple[Sequence[Profile], int]:
    """One page of profiles, newest first, whose name or email contains `q` (any case)."""
    conditions: list[sa.ColumnElement[bool]] = []
    if q:
        pattern = contains_pattern(q)
        conditions.append(
            sa.or_(
                col(Profile.display_name).ilike(pattern, escape="\\"),
                col(Profile.email).ilike(pattern, escape="\\"),
            )
        )
    return await fetch_page(
        session,
        select(Profile).where(*conditions),
        order_by=(col(Profile.created_at).desc(), col(Profile.id).desc()),
        limit=limit,
        offset=offset,
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
