"""HTTP routes of the notifications service, all under `/api/v1/notifications`."""

from fastapi import APIRouter

router = APIRouter(tags=["notifications"])
