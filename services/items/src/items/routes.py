"""HTTP routes of the items service, all under `/api/v1/items`."""

from fastapi import APIRouter

router = APIRouter(tags=["items"])
