"""HTTP routes of the auth service, all under `/api/v1/auth`."""

from fastapi import APIRouter

router = APIRouter(tags=["auth"])
