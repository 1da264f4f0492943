"""HTTP side of the sink: the part of Mailpit's API v1 that tests use.

Endpoints (same paths, parameters, status codes and JSON as Mailpit):
    GET    /api/v1/messages?start=&limit=     list, newest first
    DELETE /api/v1/messages                    body {"IDs": [...]}; no IDs deletes all
    GET    /api/v1/message/{ID}                full message ("latest" allowed); marks read
    GET    /api/v1/message/{ID}/headers        headers as {"Name": ["value", ...]}
    GET    /api/v1/message/{ID}/raw            original source
    GET    /api/v1/message/{ID}/part/{PartID}  attachment bytes
    GET    /api/v1/search?query=&start=&limit= search, same shape as the list
    DELETE /api/v1/search?query=               delete matching messages
    GET    /api/v1/info, /livez, /readyz       health checks
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from devstack.mailsink.message import Message
from devstack.mailsink.store import MessageStore

__all__ = ["create_app"]

_DEFAULT_LIMIT = 50


def _int_param(request: Request, name: str, default: int) -> int:
    try:
        value = int(request.query_params.get(name, default))
    except ValueError:
        return default
    return value if value >= 0 else default


def _summary(store: MessageStore, matched: list[Message], request: Request) -> JSONResponse:
    """Mailpit `MessagesSummary`: totals for the mailbox, counts for the matched set."""
    start = _int_param(request, "start", 0)
    limit = _int_param(request, "limit", _DEFAULT_LIMIT) or _DEFAULT_LIMIT
    page = matched[start : start + limit]
    total, unread = store.counts()
    return JSONResponse(
        {
            "total": total,
            "unread": unread,
            "count": len(page),
            "messages_count": len(matched),
            "messages_unread": sum(not m.read for m in matched),
            "start": start,
            "tags": [],
            "messages": [m.summary_json() for m in page],
        }
    )


def _not_found() -> PlainTextResponse:
    return PlainTextResponse("Not found", status_code=404)


def _ok() -> PlainTextResponse:
    return PlainTextResponse("ok")


async def _json_body(request: Request) -> dict[str, Any]:
    """Request JSON, or {} when absent or invalid (Mailpit then deletes everything)."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def create_app(store: MessageStore) -> Starlette:
    """Starlette app serving `store` with Mailpit's API v1."""

    async def list_messages(request: Request) -> Response:
        return _summary(store, store.newest_first(), request)

    async def delete_messages(request: Request) -> Response:
        ids = (await _json_body(request)).get("IDs")
        store.delete([str(i) for i in ids] if isinstance(ids, list) and ids else None)
        return _ok()

    async def search(request: Request) -> Response:
        query = request.query_params.get("query", "").strip()
        if not query:
            return PlainTextResponse("Error: no search query", status_code=400)
        return _summary(store, store.search(query), request)

    async def delete_search(request: Request) -> Response:
        query = request.query_params.get("query", "").strip()
        if not query:
            return PlainTextResponse("Error: no search query", status_code=400)
        store.delete([m.id for m in store.search(query)])
        return _ok()

    async def get_message(request: Request) -> Response:
        message = store.get(request.path_params["id"], mark_read=True)
        return JSONResponse(message.detail_json()) if message else _not_found()

    async def get_headers(request: Request) -> Response:
        message = store.get(request.path_params["id"])
        return JSONResponse(message.headers_json()) if message else _not_found()

    async def get_raw(request: Request) -> Response:
        message = store.get(request.path_params["id"])
        if message is None:
            return _not_found()
        return Response(message.raw, media_type="text/plain; charset=utf-8")

    async def get_part(request: Request) -> Response:
        message = store.get(request.path_params["id"])
        part = message.part(request.path_params["part_id"]) if message else None
        if part is None:
            return _not_found()
        return Response(part.content, media_type=part.content_type)

    async def info(request: Request) -> Response:
        total, unread = store.counts()
        return JSONResponse(
            {"Version": "devstack-mailsink", "Messages": total, "Unread": unread, "Tags": {}}
        )

    async def healthy(request: Request) -> Response:
        return _ok()

    return Starlette(
        routes=[
            Route("/api/v1/messages", list_messages, methods=["GET"]),
            Route("/api/v1/messages", delete_messages, methods=["DELETE"]),
            Route("/api/v1/message/{id}", get_message, methods=["GET"]),
            Route("/api/v1/message/{id}/headers", get_headers, methods=["GET"]),
            Route("/api/v1/message/{id}/raw", get_raw, methods=["GET"]),
            Route("/api/v1/message/{id}/part/{part_id}", get_part, methods=["GET"]),
            Route("/api/v1/search", search, methods=["GET"]),
            Route("/api/v1/search", delete_search, methods=["DELETE"]),
            Route("/api/v1/info", info, methods=["GET"]),
            Route("/livez", healthy, methods=["GET"]),
            Route("/readyz", healthy, methods=["GET"]),
        ]
    )
