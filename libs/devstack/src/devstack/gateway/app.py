"""The native gateway as an ASGI app: Traefik's `web` entry point, routers and services.

A request goes through the entry point's path checks (``paths.py``), then to the first router,
by priority, whose rule matches. That router's middlewares run outermost first, ending in its
service. Requests no router matches get Traefik's own 404: "404 page not found" with only the
``X-Content-Type-Options`` header Go's ``http.NotFound`` sets, because no router middleware
runs for them (exactly as with Traefik).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import httpx
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from devstack.gateway.asgi import send_response, send_text
from devstack.gateway.config import (
    GatewayConfig,
    HeadersConfig,
    MiddlewareConfig,
    RouterConfig,
    TransportConfig,
    load_config,
)
from devstack.gateway.headers import headers_middleware
from devstack.gateway.paths import BadRequest, prepare_path
from devstack.gateway.proxy import ServiceProxy, upstream_client
from devstack.gateway.ratelimit import RateLimit
from devstack.gateway.rules import Rule


def build_app(config_path: Path | str, env: Mapping[str, str]) -> Gateway:
    """Load ``config_path`` (rendering templates with ``env``) and return the ASGI app.

    Raises ``ConfigError`` when the file uses anything the native gateway does not implement.
    """
    return Gateway(load_config(config_path, env))


def uvicorn_config(app: ASGIApp, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    """uvicorn settings the gateway relies on; ``overrides`` are passed to ``uvicorn.Config``.

    * ``proxy_headers=False``: the client is the TCP peer, never an X-Forwarded-For value.
    * no Server/Date headers of uvicorn's own: proxied responses keep the upstream's, and the
      gateway dates its own responses, so none is sent twice.
    * lifespan on, so upstream connection pools are closed on shutdown.
    """
    options: dict[str, Any] = {
        "proxy_headers": False,
        "server_header": False,
        "date_header": False,
        "lifespan": "on",
        **overrides,
    }
    return uvicorn.Config(app, host=host, port=port, **options)


@dataclass(frozen=True)
class _Route:
    name: str
    rule: Rule
    app: ASGIApp


class Gateway:
    """ASGI app serving one gateway configuration."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self._clients: dict[TransportConfig, httpx.AsyncClient] = {}
        services = {
            name: ServiceProxy(service, self._client(service.transport))
            for name, service in config.services.items()
        }
        self._routes = [
            _Route(
                router.name,
                router.rule,
                _chain(router, config.middlewares, services[router.service]),
            )
            for router in config.routers
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] not in ("http", "websocket"):
            return
        raw_path = scope.get("raw_path") or quote(scope["path"]).encode()
        try:
            path = prepare_path(raw_path)
        except BadRequest:
            await send_response(scope, send, 400)
            return
        scope = {
            **scope,
            "raw_path": path.upstream,
            "path": unquote_to_bytes(path.upstream).decode("utf-8", errors="replace"),
        }
        method = scope.get("method", "GET")  # a WebSocket handshake is a GET
        for route in self._routes:
            if route.rule.matches(path.routing, method):
                await route.app(scope, receive, send)
                return
        await send_text(
            scope, send, 404, "404 page not found\n", [(b"x-content-type-options", b"nosniff")]
        )

    async def aclose(self) -> None:
        """Close the upstream connection pools."""
        for client in self._clients.values():
            await client.aclose()

    def _client(self, transport: TransportConfig) -> httpx.AsyncClient:
        """One connection pool per servers transport, shared by the services using it."""
        if transport not in self._clients:
            self._clients[transport] = upstream_client(transport)
        return self._clients[transport]

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _chain(
    router: RouterConfig, middlewares: Mapping[str, MiddlewareConfig], service: ServiceProxy
) -> ASGIApp:
    """The router's middlewares around its service, the first listed outermost.

    Middlewares are instantiated per router (Traefik builds each router's chain separately
    too), so a rate limit shared by two routers counts each router's traffic on its own.
    """
    app: ASGIApp = service
    for name in reversed(router.middlewares):
        config = middlewares[name]
        if isinstance(config, HeadersConfig):
            app = headers_middleware(config, app)
        else:
            app = RateLimit(app, config)
    return app
