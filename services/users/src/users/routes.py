"""HTTP routes of the users service, all under `/api/v1/users`."""

from typing import Annotated

from fastapi import APIRouter, Query

from servicekit.auth import AdminCaller, Caller
from servicekit.db import DatabaseDep, SessionDep
from servicekit.listing import Limit, Offset
from users import service
from users.deps import MyProfile, ValidProfile
from users.models import ProfilePublic, ProfileRead, ProfilesRead, ProfileUpdate, SearchText

router = APIRouter(tags=["users"])

# Documented answers besides the success and 422 (every route also answers 401 without a token).
_NOT_FOUND: dict[int | str, dict[str, str]] = {404: {"description": "No profile for this id"}}
_NOT_ADMIN: dict[int | str, dict[str, str]] = {403: {"description": "Administrators only"}}

#: What `read_profile` shows of a profile: `ProfilePublic` is a part of `ProfileRead`.
_PUBLIC_FIELDS = set(ProfilePublic.model_fields)


@router.get("/me", summary="Read my profile")
async def read_my_profile(profile: MyProfile) -> ProfileRead:
    """The caller's profile, made on first request if the registration event is still due."""
    return profile


@router.patch("/me", summary="Update my profile")
async def update_my_profile(
    profile_in: ProfileUpdate, session: SessionDep, caller: Caller
) -> ProfileRead:
    """Change only the fields sent; `bio` and `avatar_url` are cleared with null."""
    return await service.update(session=session, user_id=caller.user_id, profile_in=profile_in)


# The list also answers without the trailing slash: a redirect would point past the gateway.
@router.get("/", summary="List profiles (administrators)", responses=_NOT_ADMIN)
@router.get("", include_in_schema=False)
async def list_profiles(
    database: DatabaseDep,
    _: AdminCaller,
    q: Annotated[SearchText | None, Query(description="Part of a name or email, any case")] = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> ProfilesRead:
    """Every profile, newest first, with emails; administrators only."""
    return await service.get_all(database=database, q=q, limit=limit, offset=offset)


@router.get("/{user_id}", summary="Read someone's public profile", responses=_NOT_FOUND)
async def read_profile(profile: ValidProfile) -> ProfilePublic:
    """Anyone's public profile: name, bio and avatar, never the email."""
    return ProfilePublic.model_validate(profile.model_dump(include=_PUBLIC_FIELDS))
