"""Forwarding HTTP requests to a service's servers, the way Traefik's reverse proxy does.

* Servers of a service are used round-robin (Traefik's default ``wrr`` with equal weights).
* Request and response bodies are streamed, never buffered whole.
* Headers cross as described in ``forwarding.py``; the client's Host is passed on when the
  service has ``passHostHeader`` (Traefik's default).
* Errors map as in Traefik: upstream unreachable or broken -> 502 "Bad Gateway", dial or
  response-header timeout -> 504 "Gateway Timeout".
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import itertools
import logging
from collections.abc import AsyncIterator

import httpx
from starlette.types import Receive, Scope, Send

from devstack.gateway.asgi import RawHeaders, first_completed, send_text
from devstack.gateway.config import ServiceConfig, TransportConfig
from devstack.gateway.forwarding import request_headers, response_headers
from devstack.gateway.websocket import proxy_websocket

logger = logging.getLogger("devstack.gateway")

#: Connection pool size per servers transport. Traefik keeps up to 200 idle connections per
#: host by default and does not cap open ones; a dev gateway needs a bound, not a tight one.
MAX_CONNECTIONS = 1000
MAX_IDLE_CONNECTIONS = 200


class ClientDisconnected(Exception):
    """The client went away while its request body was being forwarded."""


def upstream_client(transport: TransportConfig) -> httpx.AsyncClient:
    """A pooled client for one servers transport.

    Only the dial and response-header timeouts apply (Traefik's forwardingTimeouts): reading
    and writing bodies has no time limit, so long streams keep working.
    """
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            connect=transport.dial_timeout, read=None, write=None, pool=transport.dial_timeout
        ),
        limits=httpx.Limits(
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_IDLE_CONNECTIONS,
            keepalive_expiry=transport.idle_conn_timeout,
        ),
        # A proxy passes responses on as they are: no redirects, no proxies from the
        # environment, and no shared cookie jar collecting every user's cookies.
        follow_redirects=False,
        trust_env=False,
        cookies=http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
    )


class ServiceProxy:
    """The ASGI app at the end of a router's chain: one service, its servers in turn."""

    def __init__(self, service: ServiceConfig, client: httpx.AsyncClient) -> None:
        self.service = service
        self.client = client
        self._servers = itertools.cycle([httpx.URL(server) for server in service.servers])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = next(self._servers)
        if scope["type"] == "websocket":
            await proxy_websocket(scope, receive, send, server, self.service)
        elif scope["type"] == "http":
            await self._proxy_http(scope, receive, send, server)

    async def _proxy_http(
        self, scope: Scope, receive: Receive, send: Send, server: httpx.URL
    ) -> None:
        headers = request_headers(
            scope, pass_host_header=self.service.pass_host_header, upstream_host=server.netloc
        )
        body_read = asyncio.Event()
        content: AsyncIterator[bytes] | None = None
        if _has_body(scope["headers"]):
            content = _request_body(receive, body_read)
        else:
            body_read.set()
        url = server.copy_with(raw_path=_target(scope))
        # Built directly rather than with client.build_request(), which would add the
        # client's default Accept, Accept-Encoding and User-Agent headers.
        request = httpx.Request(scope["method"], url, headers=headers, content=content)
        try:
            async with asyncio.timeout(self.service.transport.response_header_timeout):
                response = await self.client.send(request, stream=True)
        except ClientDisconnected:
            return  # nobody is left to answer (Traefik logs a 499)
        except (httpx.TimeoutException, TimeoutError):
            await send_text(scope, send, 504, "Gateway Timeout")
            return
        except httpx.TransportError as exc:
            logger.warning(
                "%s %s: %s did not answer: %r", scope["method"], scope["path"], server, exc
            )
            await send_text(scope, send, 502, "Bad Gateway")
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": response_headers(response.headers.raw),
                }
            )
            await first_completed(
                _send_body(response, send), _wait_for_disconnect(receive, body_read)
            )
        finally:
            await response.aclose()


def _has_body(headers: RawHeaders) -> bool:
    """Go forwards no body for a request without one (no Content-Length > 0, not chunked)."""
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


def _target(scope: Scope) -> bytes:
    """Path and query for the upstream; Go's proxy turns query semicolons into ampersands."""
    query = scope.get("query_string", b"").replace(b";", b"&")
    return scope["raw_path"] + (b"?" + query if query else b"")


async def _request_body(receive: Receive, done: asyncio.Event) -> AsyncIterator[bytes]:
    """Stream the request body to the upstream as the client sends it."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        if chunk := message.get("body", b""):
            yield chunk
        if not message.get("more_body", False):
            done.set()
            return


async def _send_body(response: httpx.Response, send: Send) -> None:
    try:
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except httpx.HTTPError as exc:
        # The status line is gone already. Leaving the response unfinished makes the server
        # drop the connection, which is also how Go's proxy reports a broken upstream body.
        logger.warning("%s broke off its response: %r", response.url, exc)
        return
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _wait_for_disconnect(receive: Receive, body_read: asyncio.Event) -> None:
    """Return when the client disconnects, so an endless stream (SSE) is not read for nobody.

    The ASGI server silently drops what is sent after a disconnect, so this is the only way
    to notice. It first waits for the request body to be read: ``receive`` has one reader.
    """
    await body_read.wait()
    while (await receive())["type"] != "http.disconnect":
        pass
