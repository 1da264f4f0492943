"""The platform's pure ASGI layer: request ids, security headers, HTTP's read and cache rules,
an access-log line, bounded bodies, the generic 500."""

import logging
import re
import time
import uuid
from contextlib import AsyncExitStack
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit import caching, metrics, tracing
from servicekit.logging import request_id_var

logger = logging.getLogger("servicekit.access")

REQUEST_ID_HEADER = "X-Request-ID"
_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def _sane_request_id(candidate: bytes | None) -> str:
    """Keep the caller's id when it is sane, so one id follows a request across services."""
    if candidate is not None:
        text = candidate.decode("latin-1")
        if _ACCEPTABLE_REQUEST_ID.match(text):
            return text
    return uuid.uuid4().hex


def _relative_if_same_host(location: bytes, host: bytes) -> bytes | None:
    """A `Location` built from the request's own Host (Starlette's trailing-slash redirect), as
    a relative one; None when it is not such a URL.

    The Host is the client's to choose, so an absolute URL from it could send the next request
    anywhere. Relative, it stays on whatever URL the client used.
    """
    parts = urlsplit(location.decode("latin-1"))
    if parts.scheme in ("http", "https") and parts.netloc.lower() == host.decode("latin-1").lower():
        return (parts._replace(scheme="", netloc="").geturl() or "/").encode("latin-1")
    return None


class _RequestFacts:
    """What the answer's headers depend on, read in one pass over the request's headers."""

    __slots__ = ("authorized", "content_length", "host", "if_none_match", "request_id")

    def __init__(self, scope: Scope) -> None:
        self.request_id: bytes | None = None
        self.authorized = False
        self.if_none_match: str | None = None
        self.content_length: int | None = None
        self.host = b""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                if self.request_id is None:
                    self.request_id = value
            elif name == b"host":
                self.host = value
            elif name == b"authorization":
                self.authorized = True
            elif name == b"if-none-match":
                self.if_none_match = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                self.content_length = int(value)


_SECURITY_RAW = {name.lower().encode(): value.encode() for name, value in SECURITY_HEADERS.items()}
_RAW = {policy: policy.encode() for policy in (caching.NO_STORE, caching.PRIVATE)}


def _complete_headers(
    raw: list[tuple[bytes, bytes]], request_id: bytes, cache_control: str, host: bytes
) -> bytes | None:
    """Add ours to an answer's headers in one pass over them; return its ETag, if it has one.

    Raw tuples rather than `MutableHeaders`: this runs on every answer, and each of its
    lookups would scan and lower-case the whole list again.
    """
    etag = location = None
    has_cache_control = has_request_id = False
    missing = dict(_SECURITY_RAW)
    for name, value in raw:
        lowered = name.lower()
        if lowered == b"etag":
            etag = value
        elif lowered == b"cache-control":
            has_cache_control = True
        elif lowered == b"x-request-id":
            has_request_id = True
        elif lowered == b"location":
            location = _relative_if_same_host(value, host)
        else:
            missing.pop(lowered, None)
    if location is not None:
        raw[:] = [header for header in raw if header[0].lower() != b"location"]
        raw.append((b"location", location))
    if has_request_id:  # ours replaces whatever an inner layer set
        raw[:] = [header for header in raw if header[0].lower() != b"x-request-id"]
    raw.append((b"x-request-id", request_id))
    raw.extend(missing.items())
    if not has_cache_control:
        raw.append((b"cache-control", _RAW[cache_control]))
    return etag


class RequestContextMiddleware:
    """The platform's one ASGI layer: every answer, errors and unexpected 500s included, gets
    these headers, a request id and an access-log line; request bodies are bounded.

    It applies HTTP's rules for reads once for every route (RFC 9110/9111): HEAD is served
    as the GET it stands for without the body; a GET's 200 without an ETag gets one from its
    bytes; `If-None-Match` naming the ETag turns the 200 into a 304; and every answer whose
    route named no `Cache-Control` gets `caching.default_cache_control`.

    A body over `max_body_bytes` is a 413 without being read whole: a declared Content-Length
    over it before any route runs (so nothing happens), a streamed body once it passes it.

    One layer rather than several (request id, body limit, Starlette's error middleware,
    FastAPI's exit stack): each layer is a call, a closure around `send` and a frame per
    request, and `bench/http_reads.py` measured them at several percent each.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        facts = _RequestFacts(scope)
        request_id = _sane_request_id(facts.request_id)
        raw_request_id = request_id.encode("latin-1")
        token = request_id_var.set(request_id)
        trace_token, span = tracing.enter_request(scope)
        started = time.perf_counter()
        status_code = 500
        response_started = False
        method = scope.get("method")
        is_head = method == "HEAD"
        is_read = is_head or method == "GET"
        inner_scope = {**scope, "method": "GET"} if is_head else scope
        held: Message | None = None  # a GET's 200 start, until its body gives the ETag
        drop_body = is_head
        limit = self.max_body_bytes
        bound = -1 if limit is None else limit  # counted only when there is a limit
        received = 0

        def answer_conditionally(start: Message, etag: bytes) -> None:
            """A 304 instead of the 200 when `If-None-Match` names its ETag."""
            nonlocal status_code, drop_body
            if facts.if_none_match is None:
                return
            if caching.none_match(facts.if_none_match, etag.decode("latin-1")):
                start["status"] = status_code = 304
                start["headers"] = [
                    (name, value)
                    for name, value in start["headers"]
                    if name.lower() not in caching.NOT_MODIFIED_DROPS
                ]
                drop_body = True

        async def send_with_headers(message: Message) -> None:
            nonlocal status_code, response_started, held
            if message["type"] == "http.response.start":
                status_code = message["status"]
                raw = message["headers"] = list(message.get("headers", ()))
                cache_control = caching.default_cache_control(
                    status=status_code, authorized=facts.authorized
                )
                etag = _complete_headers(raw, raw_request_id, cache_control, facts.host)
                if is_read and status_code == 200:
                    if etag is None:
                        held = message
                        return
                    answer_conditionally(message, etag)
                response_started = True
            elif message["type"] == "http.response.body":
                if held is not None:
                    start, held = held, None
                    if not message.get("more_body", False):
                        etag = caching.content_tag(message.get("body", b"")).encode()
                        start["headers"].append((b"etag", etag))
                        answer_conditionally(start, etag)
                    response_started = True
                    await send(start)
                if drop_body:
                    message = {**message, "body": b""}
            await send(message)

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > bound:
                    raise RequestBodyTooLarge()
            return message

        try:
            # FastAPI's request handler closes uploaded files through this stack.
            async with AsyncExitStack() as files:
                inner_scope["fastapi_middleware_astack"] = files
                if limit is None or kind != "http":
                    await self.app(inner_scope, receive, send_with_headers)
                elif facts.content_length is not None and facts.content_length > limit:
                    await _answer(RequestBodyTooLarge(), inner_scope, receive, send_with_headers)
                else:
                    await self.app(inner_scope, counting_receive, send_with_headers)
        except Exception as exc:
            if kind != "http" or response_started:
                logger.exception("unhandled error")
                raise
            held = None
            if isinstance(exc, RequestBodyTooLarge):  # read outside a route's error handlers
                await _answer(exc, inner_scope, receive, send_with_headers)
            else:
                logger.exception("unhandled error")
                await _answer(None, inner_scope, receive, send_with_headers)
        finally:
            route = metrics.route_template(inner_scope)  # routing wrote there (HEAD: a copy)
            if kind == "http":
                seconds = time.perf_counter() - started
                log_request(method, scope["path"], status_code, seconds)
                metrics.observe_request(route, scope["method"], status_code, seconds)
            tracing.exit_request(trace_token, span, scope, route=route, status=status_code)
            request_id_var.reset(token)


async def _answer(
    refusal: HTTPException | None, scope: Scope, receive: Receive, send: Send
) -> None:
    """`{"detail": ...}` for a refusal of ours, or the generic 500 when `refusal` is None."""
    if refusal is None:
        response = JSONResponse({"detail": "Internal server error"}, status_code=500)
    else:
        response = JSONResponse({"detail": refusal.detail}, refusal.status_code, refusal.headers)
    await response(scope, receive, send)


def log_request(method: str | None, path: str, status: int, seconds: float) -> None:
    """The access-log line of one request; skipped whole when INFO is off."""
    if logger.isEnabledFor(logging.INFO):
        duration_ms = round(seconds * 1000, 2)
        logger.info(
            "request",
            extra={"method": method, "path": path, "status": status, "duration_ms": duration_ms},
        )


class RequestBodyTooLarge(HTTPException):
    """Raised from `receive` past the limit; FastAPI re-raises HTTPExceptions from body parsing."""

    def __init__(self) -> None:
        # No `Connection: close`: uvicorn then discards the unread rest of the body instead of
        # resetting the connection, and a proxy in front (which sends the whole body before it
        # reads the answer) passes the 413 on rather than a 502.
        super().__init__(413, "Request body too large")
