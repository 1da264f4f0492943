"""Pure ASGI middleware: request ids, security headers, an access-log line, bounded bodies."""

import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit import metrics, tracing
from servicekit.logging import request_id_var

logger = logging.getLogger("servicekit.access")

REQUEST_ID_HEADER = "X-Request-ID"
_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def incoming_request_id(scope: Scope) -> str:
    """Keep the caller's id when it is sane, so one id follows a request across services."""
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _ACCEPTABLE_REQUEST_ID.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Outermost of ours: every answer, errors and unexpected 500s included, gets these headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope)
        token = request_id_var.set(request_id)
        trace_token, span = tracing.enter_request(scope)
        started = time.perf_counter()
        status_code = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            logger.exception("unhandled error")
            if scope["type"] != "http" or response_started:
                raise
            response = JSONResponse({"detail": "Internal server error"}, status_code=500)
            await response(scope, receive, send_with_headers)
        finally:
            route = metrics.route_template(scope)
            if scope["type"] == "http":
                seconds = time.perf_counter() - started
                logger.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status_code,
                        "duration_ms": round(seconds * 1000, 2),
                    },
                )
                metrics.observe_request(route, scope["method"], status_code, seconds)
            tracing.exit_request(trace_token, span, scope, route=route, status=status_code)
            request_id_var.reset(token)


class RequestBodyTooLarge(HTTPException):
    """Raised from `receive` past the limit; FastAPI re-raises HTTPExceptions from body parsing."""

    def __init__(self) -> None:
        # No `Connection: close`: uvicorn then discards the unread rest of the body instead of
        # resetting the connection, and a proxy in front (which sends the whole body before it
        # reads the answer) passes the 413 on rather than a 502.
        super().__init__(413, "Request body too large")


def _declared_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


class BodySizeLimitMiddleware:
    """Answer 413 to a request body over `max_bytes` without reading it whole.

    A declared Content-Length over the limit is refused before any route runs (so nothing
    happens); a streamed body is counted as it arrives and refused once it passes the limit.
    Sits inside `RequestContextMiddleware`, so the 413 carries the request id and headers.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestBodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except RequestBodyTooLarge:
            # Normally answered by the error handlers; this catches a read outside a route.
            if response_started:
                raise
            await self._refuse(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
        refusal = RequestBodyTooLarge()
        response = JSONResponse({"detail": refusal.detail}, refusal.status_code, refusal.headers)
        await response(scope, receive, send)
