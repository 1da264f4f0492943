"""HTTP routes of the users service, all under `/api/v1/users`."""

from fastapi import APIRouter

router = APIRouter(tags=["users"])
