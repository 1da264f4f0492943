"""HTTP and WebSocket routes of the notifications service, all under `/api/v1/notifications`."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket, status

from notifications import service, stream
from notifications.models import DeliveryList, DeliveryStatus, NotificationList, NotificationPublic
from notifications.settings import settings
from servicekit.auth import AdminCaller, Caller
from servicekit.db import DatabaseDep, SessionDep
from servicekit.listing import Limit, Offset

router = APIRouter(tags=["notifications"])

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"description": "Missing or invalid token"}}


@router.get("/", summary="List own notifications", responses=UNAUTHORIZED)
@router.get("", include_in_schema=False)
async def list_notifications(
    caller: Caller,
    database: DatabaseDep,
    unread_only: Annotated[bool, Query(description="Only those not read yet")] = False,
    limit: Limit = 20,
    offset: Offset = 0,
) -> NotificationList:
    """The caller's notifications, newest first, with the number still unread."""
    return await service.get_all(
        database=database,
        user_id=caller.user_id,
        unread_only=unread_only,
        limit=limit,
        offset=offset,
    )


@router.post(
    "/read-all",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Mark all read",
    responses=UNAUTHORIZED,
)
async def read_all(caller: Caller, session: SessionDep) -> None:
    """Mark every notification of the caller read."""
    await service.mark_all_read(session=session, user_id=caller.user_id)


@router.post("/{notification_id}/read", summary="Mark read", responses={401: {}, 404: {}})
async def read_notification(
    notification_id: uuid.UUID, caller: Caller, session: SessionDep
) -> NotificationPublic:
    """Mark one of the caller's notifications read; another user's is 404."""
    return await service.mark_read(
        session=session, user_id=caller.user_id, notification_id=notification_id
    )


@router.get("/deliveries", summary="List outgoing mail", responses={401: {}, 403: {}})
async def list_deliveries(
    caller: AdminCaller,
    database: DatabaseDep,
    status_filter: Annotated[
        DeliveryStatus | None, Query(alias="status", description="Only this status")
    ] = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> DeliveryList:
    """Every outgoing mail, newest first, with its status, attempts and last error (admins)."""
    return await service.get_deliveries(
        database=database, status=status_filter, limit=limit, offset=offset
    )


@router.websocket("/ws")
async def notification_stream(websocket: WebSocket) -> None:
    """New notifications as JSON; the first message must be `{"token": "<access token>"}`."""
    await stream.serve(
        websocket,
        hub=websocket.app.state.hub,
        auth_timeout=settings.WS_AUTH_TIMEOUT,
        recheck_interval=settings.WS_RECHECK_INTERVAL,
    )
