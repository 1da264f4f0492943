"""Dependencies of the users routes: the caller's own profile and someone else's."""

import uuid
from typing import Annotated

from fastapi import Depends

from servicekit.auth import Caller
from servicekit.db import ReadSessionDep, SessionDep
from servicekit.errors import NotFound
from users import service
from users.models import Profile


async def my_profile(session: SessionDep, caller: Caller) -> Profile:
    """The caller's profile; made from the token if `user.registered` has not arrived yet."""
    return await service.get_or_create(session=session, user_id=caller.user_id)


async def valid_profile(user_id: uuid.UUID, session: ReadSessionDep, caller: Caller) -> Profile:
    """The profile named in the path; any signed-in user may look (404 when there is none)."""
    profile = await service.get(session=session, user_id=user_id)
    if profile is None:
        raise NotFound(service.PROFILE_NOT_FOUND)
    return profile


MyProfile = Annotated[Profile, Depends(my_profile)]
ValidProfile = Annotated[Profile, Depends(valid_profile)]
