"""Passing WebSocket connections through to a service.

Traefik tunnels the upgraded TCP connection. Under ASGI the gateway terminates the client's
WebSocket instead, opens one to the upstream with the ``websockets`` client, and relays
messages both ways. What the client can observe stays the same:

* the handshake carries the client's headers (X-Request-ID, Authorization, Cookie, Origin...)
  and the offered subprotocols; the upstream's choice and its response headers come back;
* text stays text and binary stays binary;
* close codes and reasons cross in both directions, so an upstream closing with 4401 closes
  the client with 4401;
* a refused handshake (say a 403) reaches the client as that HTTP response; an unreachable
  upstream gives 502 and a timeout 504, as for plain HTTP.

The handshake must complete within the dial timeout plus the response-header timeout of the
service's servers transport (Traefik times those two phases separately).
"""

from __future__ import annotations

import logging

import httpx
from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.http11 import Request

from devstack.gateway.asgi import RawHeaders, first_completed, send_response, send_text
from devstack.gateway.config import ServiceConfig
from devstack.gateway.forwarding import request_headers, response_headers

logger = logging.getLogger("devstack.gateway")

# Negotiated separately on each leg, by the ASGI server and by the websockets client.
_HANDSHAKE_HEADERS = (
    b"sec-websocket-key",
    b"sec-websocket-version",
    b"sec-websocket-extensions",
    b"sec-websocket-protocol",
    b"sec-websocket-accept",
)
_NOT_RELAYED = frozenset({*_HANDSHAKE_HEADERS, b"content-length"})


async def proxy_websocket(
    scope: Scope, receive: Receive, send: Send, server: httpx.URL, service: ServiceConfig
) -> None:
    """Relay one WebSocket connection between the client and ``server``."""
    if (await receive())["type"] != "websocket.connect":
        return
    headers = request_headers(
        scope,
        pass_host_header=service.pass_host_header,
        upstream_host=server.netloc,
        drop=_HANDSHAKE_HEADERS,
    )
    transport = service.transport
    open_timeout = transport.dial_timeout  # None: no limit, as for plain HTTP
    if open_timeout is not None and transport.response_header_timeout is not None:
        open_timeout += transport.response_header_timeout
    try:
        upstream = await connect(
            _websocket_uri(server, scope),
            additional_headers=[
                (name.decode("latin-1"), value.decode("latin-1")) for name, value in headers
            ],
            subprotocols=scope.get("subprotocols") or None,
            open_timeout=open_timeout,
            compression=None,  # local hop; the client's own leg negotiates compression
            max_size=None,  # the gateway's server already bounds what clients may send
            proxy=None,  # never an HTTP proxy taken from the environment
            user_agent_header=None,  # the client's own User-Agent is forwarded instead
            create_connection=_PassHostConnection if service.pass_host_header else ClientConnection,
        )
    except InvalidStatus as refusal:
        response = refusal.response
        body = bytes(response.body or b"")
        await send_response(scope, send, response.status_code, body, _relayed(response.headers))
        return
    except TimeoutError:
        await send_text(scope, send, 504, "Gateway Timeout")
        return
    except (OSError, InvalidHandshake) as exc:
        logger.warning("WebSocket %s: %s did not answer: %r", scope["path"], server, exc)
        await send_text(scope, send, 502, "Bad Gateway")
        return

    try:
        handshake = upstream.response
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": upstream.subprotocol,
                "headers": _relayed(handshake.headers) if handshake is not None else [],
            }
        )
        await first_completed(
            _client_to_upstream(receive, upstream), _upstream_to_client(upstream, send)
        )
    finally:
        await upstream.close()


class _PassHostConnection(ClientConnection):
    """Sends the client's Host header (``passHostHeader``) instead of the server's address.

    websockets always derives Host from the URI and appends extra headers after it, so the
    derived one is removed before the forwarded headers, which carry the client's Host, go in.
    """

    async def handshake(self, *args: object, **kwargs: object) -> None:
        build_request = self.protocol.connect

        def request_without_host() -> Request:
            request = build_request()
            del request.headers["Host"]
            return request

        self.protocol.connect = request_without_host  # type: ignore[method-assign]
        await super().handshake(*args, **kwargs)  # type: ignore[arg-type]


def _relayed(headers: Headers) -> RawHeaders:
    """Upstream handshake response headers worth passing to the client (X-Request-ID...)."""
    raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.raw_items()]
    return [(name, value) for name, value in response_headers(raw) if name not in _NOT_RELAYED]


def _websocket_uri(server: httpx.URL, scope: Scope) -> str:
    scheme = "wss" if server.scheme == "https" else "ws"
    query = scope.get("query_string", b"")
    target = scope["raw_path"] + (b"?" + query if query else b"")
    return f"{scheme}://{server.netloc.decode('ascii')}{target.decode('latin-1')}"


async def _client_to_upstream(receive: Receive, upstream: ClientConnection) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            code = _sendable_close_code(message.get("code", 1000), abnormal=1001)
            await upstream.close(code, message.get("reason") or "")
            return
        if message.get("text") is not None:
            await upstream.send(message["text"])
        elif message.get("bytes") is not None:
            await upstream.send(message["bytes"])


async def _upstream_to_client(upstream: ClientConnection, send: Send) -> None:
    try:
        async for message in upstream:
            if isinstance(message, str):
                await send({"type": "websocket.send", "text": message})
            else:
                await send({"type": "websocket.send", "bytes": message})
    except ConnectionClosed:
        pass  # closed without a proper closing handshake: close_code tells how
    except OSError:
        return  # the client is gone; the other direction closes the upstream
    code = _sendable_close_code(upstream.close_code, abnormal=1011)
    try:
        await send({"type": "websocket.close", "code": code, "reason": upstream.close_reason or ""})
    except OSError:
        return


def _sendable_close_code(code: int | None, *, abnormal: int) -> int:
    """A close code that may be sent on the other leg.

    1005 (no code given) becomes a normal 1000. Codes that only describe a broken connection
    (1006, 1015) or are invalid become ``abnormal``: 1001 "going away" towards the upstream
    when the client vanished, 1011 towards the client when the upstream did.
    """
    if code == 1005:
        return 1000
    if code is not None and (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
        return code
    return abnormal
