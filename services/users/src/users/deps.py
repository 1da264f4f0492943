"""Dependencies of the users routes: the caller's own profile and someone else's."""

import uuid
from typing import Annotated

from fastapi import Depends

from servicekit.auth import Caller
from servicekit.db import DatabaseDep, SessionDep
from users import service
from users.models import ProfileRead


async def my_profile(session: SessionDep, database: DatabaseDep, caller: Caller) -> ProfileRead:
    """The caller's profile; made from the token if `user.registered` has not arrived yet."""
    return await service.get_or_create(session=session, database=database, user_id=caller.user_id)


async def valid_profile(user_id: uuid.UUID, database: DatabaseDep, caller: Caller) -> ProfileRead:
    """The profile named in the path; any signed-in user may look (404 when there is none)."""
    return await service.get(database=database, user_id=user_id)


MyProfile = Annotated[ProfileRead, Depends(my_profile)]
ValidProfile = Annotated[ProfileRead, Depends(valid_profile)]
