"""Traefik's `headers` middleware: CORS and security headers.

Mirrors pkg/middlewares/headers of Traefik v3: ``header.go`` for CORS, and ``secure.go``, which
delegates to unrolled/secure, for the security headers. As in Traefik, one `headers`
middleware is the CORS part wrapping the secure part, and response headers are applied the
moment the wrapped handler starts its response, so they also land on 429/502/504 responses
produced further in.

Preflights (OPTIONS with Origin and Access-Control-Request-Method) are answered by the CORS
part itself and never reach the service. Consequently the security headers only reach a
preflight when a *separate* security-headers middleware is listed before the CORS one, which
is how gateway/dynamic.yml orders them.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Receive, Scope, Send

from devstack.gateway.asgi import on_response_start, send_response
from devstack.gateway.config import HeadersConfig


def headers_middleware(config: HeadersConfig, app: ASGIApp) -> ASGIApp:
    """Wrap ``app`` as Traefik does: CORS part outside, secure part inside."""
    if config.has_secure:
        app = SecureHeaders(app, config)
    if config.has_cors:
        app = Cors(app, config)
    return app


class SecureHeaders:
    """The unrolled/secure part: headers set (overriding the upstream's) on every response."""

    def __init__(self, app: ASGIApp, config: HeadersConfig) -> None:
        self.app = app
        self.headers: list[tuple[str, str]] = []
        if config.frame_deny:
            self.headers.append(("X-Frame-Options", "DENY"))
        if config.content_type_nosniff:
            self.headers.append(("X-Content-Type-Options", "nosniff"))
        if config.referrer_policy:
            self.headers.append(("Referrer-Policy", config.referrer_policy))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, on_response_start(send, self._apply))

    def _apply(self, headers: MutableHeaders) -> None:
        for name, value in self.headers:
            headers[name] = value


class Cors:
    """The CORS part of Traefik's `headers` middleware (header.go, current v3 behaviour)."""

    def __init__(self, app: ASGIApp, config: HeadersConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request = Headers(scope=scope)
        origin = request.get("origin", "")
        requested_method = request.get("access-control-request-method", "")
        if scope["type"] == "http" and scope["method"] == "OPTIONS" and origin and requested_method:
            await send_response(
                scope, send, 200, headers=self._preflight(request, origin, requested_method)
            )
            return
        await self.app(
            scope, receive, on_response_start(send, lambda headers: self._decorate(headers, origin))
        )

    def _preflight(
        self, request: Headers, origin: str, requested_method: str
    ) -> list[tuple[bytes, bytes]]:
        """Headers of the preflight response the gateway answers itself."""
        config = self.config
        headers = MutableHeaders()
        if config.allow_credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        if "*" in config.allow_headers and config.allow_credentials:
            # A literal "*" means nothing to browsers when credentials are allowed: echo instead.
            if requested_headers := request.get("access-control-request-headers"):
                headers["Access-Control-Allow-Headers"] = requested_headers
        elif config.allow_headers:
            headers["Access-Control-Allow-Headers"] = ",".join(config.allow_headers)
        if "*" in config.allow_methods and config.allow_credentials:
            headers["Access-Control-Allow-Methods"] = requested_method
        elif config.allow_methods:
            headers["Access-Control-Allow-Methods"] = ",".join(config.allow_methods)
        if (allowed := self._allowed_origin(origin)) is not None:
            headers["Access-Control-Allow-Origin"] = allowed
        if config.max_age is not None:
            headers["Access-Control-Max-Age"] = str(config.max_age)
        self._expose(headers)
        if config.add_vary_header:
            # Deliberate difference: Traefik v3 sends no Vary on preflights, but caches must not
            # reuse one origin's preflight answer for another, and our HTTP contract requires it.
            headers["Vary"] = "Origin"
        return headers.raw

    def _decorate(self, headers: MutableHeaders, origin: str) -> None:
        """Headers added to every response that went through (PostRequestModifyResponseHeaders)."""
        config = self.config
        if (allowed := self._allowed_origin(origin)) is not None:
            headers["Access-Control-Allow-Origin"] = allowed
        if config.allow_credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        self._expose(headers)
        if config.add_vary_header:
            _add_vary_origin(headers)

    def _expose(self, headers: MutableHeaders) -> None:
        expose = self.config.expose_headers
        if expose and not ("*" in expose and self.config.allow_credentials):
            headers["Access-Control-Expose-Headers"] = ",".join(expose)

    def _allowed_origin(self, origin: str) -> str | None:
        """The Access-Control-Allow-Origin value for ``origin``, or None when it is not allowed."""
        for item in self.config.allow_origins:
            if item == origin:
                return item
            if item == "*":
                # With credentials a wildcard is invalid for browsers, so the origin is echoed.
                return origin if self.config.allow_credentials else "*"
        return None


def _add_vary_origin(headers: MutableHeaders) -> None:
    """Append Origin to Vary like Traefik, but keep every upstream Vary value.

    Traefik reads only the first Vary header and replaces them all (see traefik/traefik#12222);
    joining them gives the same result for zero or one header and stays correct for more.
    """
    values = headers.getlist("vary")
    if values and values[0] == "Origin":
        return
    headers["Vary"] = ",".join([*values, "Origin"])
