"""The WebSocket stream of new notifications (`WS /api/v1/notifications/ws`).

Protocol: the client connects, then sends `{"token": "<access token>"}` as its first
message (a token in the URL would end up in access logs). A bad or missing token, or
none within WS_AUTH_TIMEOUT seconds, closes the socket with 4401. After that, each new
notification of the user arrives as one JSON text message, the object `GET /` lists.

The socket must not outlive its token: the token is checked again before each message
and every WS_RECHECK_INTERVAL seconds, and once it has expired or been revoked the socket
closes with 4401 (the client reconnects with a fresh one). When Redis cannot be reached
the token cannot be checked: 1013, try again later.

Right after authenticating, the stream first sends the user's unread notifications
(up to BACKLOG_SIZE, oldest first), then new ones as they come: a client that was away,
or connected a moment after a notification was created, misses nothing. The backlog is
read after subscribing, so a notification may arrive twice; clients dedupe by `id`.
"""

import asyncio
import contextlib
import json

from fastapi import WebSocket, WebSocketDisconnect

from notifications import service
from notifications.push import Hub
from servicekit.auth import Principal, authenticate
from servicekit.errors import DependencyUnavailable, Unauthorized

CLOSE_UNAUTHORIZED = 4401
CLOSE_TRY_AGAIN_LATER = 1013
MAX_FIRST_MESSAGE = 8192
MAX_CLOSE_REASON = 120  # a close frame's reason holds at most 123 bytes
NO_TOKEN = 'Send {"token": "<access token>"} first'
BACKLOG_SIZE = 50


class _ClientLeft(Exception):
    pass


async def serve(
    websocket: WebSocket, *, hub: Hub, auth_timeout: float, recheck_interval: float
) -> None:
    """Authenticate from the first message, then forward the user's new notifications."""
    await websocket.accept()
    try:
        token = await _first_message_token(websocket, auth_timeout)
    except _ClientLeft:
        return
    if token is None:
        await _close(websocket, CLOSE_UNAUTHORIZED, NO_TOKEN)
        return
    principal = await _authenticate_or_close(websocket, token)
    if principal is None:
        return
    async with hub.listen(principal.user_id) as inbox:
        try:
            for message in await _unread_backlog(websocket, principal):
                await websocket.send_text(message)
        except (WebSocketDisconnect, OSError):
            return
        await _forward(websocket, inbox, token, recheck_interval)


async def _unread_backlog(websocket: WebSocket, principal: Principal) -> list[str]:
    unread = await service.get_all(
        database=websocket.app.state.database,
        user_id=principal.user_id,
        unread_only=True,
        limit=BACKLOG_SIZE,
        offset=0,
    )
    return [notification.model_dump_json() for notification in reversed(unread.items)]


async def _first_message_token(websocket: WebSocket, wait_seconds: float) -> str | None:
    try:
        async with asyncio.timeout(wait_seconds):
            message = await websocket.receive()
    except TimeoutError:
        return None
    if message["type"] == "websocket.disconnect":
        raise _ClientLeft
    raw = message.get("text")
    if raw is None and message.get("bytes") is not None:
        raw = message["bytes"].decode("utf-8", errors="replace")
    if raw is None or len(raw) > MAX_FIRST_MESSAGE:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    token = data.get("token") if isinstance(data, dict) else None
    return token if isinstance(token, str) and token else None


async def _authenticate_or_close(websocket: WebSocket, token: str) -> Principal | None:
    try:
        return await authenticate(token, websocket)
    except Unauthorized as exc:
        await _close(websocket, CLOSE_UNAUTHORIZED, exc.detail)
    except DependencyUnavailable:
        await _close(websocket, CLOSE_TRY_AGAIN_LATER, "Try again later")
    return None


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close with `code`, unless the client has already gone (then there is no one to tell)."""
    with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
        await websocket.close(code, reason[:MAX_CLOSE_REASON])


async def _until_client_leaves(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, so its going away is noticed at once."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _forward(
    websocket: WebSocket, inbox: asyncio.Queue[str], token: str, recheck_interval: float
) -> None:
    left = asyncio.create_task(_until_client_leaves(websocket))
    try:
        while True:
            arrival = asyncio.ensure_future(inbox.get())
            done, _ = await asyncio.wait(
                {left, arrival}, timeout=recheck_interval, return_when=asyncio.FIRST_COMPLETED
            )
            if left in done or await _authenticate_or_close(websocket, token) is None:
                arrival.cancel()
                return
            if arrival not in done:
                arrival.cancel()
                continue
            try:
                await websocket.send_text(arrival.result())
            except (WebSocketDisconnect, OSError):
                return  # gone between two messages; `left` would say so next
    finally:
        left.cancel()
        await asyncio.wait({left})
        if not left.cancelled():
            left.exception()  # a client that vanished mid-read is not an error worth raising
