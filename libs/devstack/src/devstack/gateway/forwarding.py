"""Which headers cross the gateway, for HTTP requests and WebSocket handshakes alike.

* Hop-by-hop headers are removed in both directions, including those named by Connection.
* The client is untrusted (Traefik's entry point has no ``trustedIPs`` and is not insecure),
  so every X-Forwarded-* / X-Real-Ip header it sent is dropped and rebuilt from the TCP peer,
  as Traefik's forwardedheaders middleware does.
* The RFC 7239 ``Forwarded`` header is dropped too. Traefik copies it through; dropping it is a
  deliberate difference, so natively no service can be misled by a client-chosen value.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable

from starlette.types import Scope

from devstack.gateway.asgi import RawHeaders, client_ip

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set by the gateway from the TCP connection; never taken from the client.
FORWARDING_HEADERS = frozenset(
    {
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-method",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
        b"x-forwarded-proto",
        b"x-forwarded-server",
        b"x-forwarded-tls-client-cert",
        b"x-forwarded-tls-client-cert-info",
        b"x-forwarded-uri",
        b"x-real-ip",
    }
)
# Host is set below; `expect: 100-continue` was already honoured by the gateway's own server.
_REPLACED = frozenset({b"host", b"expect"})
_HOSTNAME = socket.gethostname().encode()
_HOST_PORT = re.compile(rb"(?:\[[^\]]*\]|[^:]*):([^:]*)")


def request_headers(
    scope: Scope, *, pass_host_header: bool, upstream_host: bytes, drop: Iterable[bytes] = ()
) -> RawHeaders:
    """The headers the upstream receives for this request, as Traefik would send them."""
    raw: RawHeaders = scope["headers"]
    skipped = HOP_BY_HOP | FORWARDING_HEADERS | _REPLACED | connection_listed(raw) | set(drop)
    headers = [(name, value) for name, value in raw if name not in skipped]

    host = next((value for name, value in raw if name == b"host"), b"")
    tls = scope.get("scheme") in ("https", "wss")
    if scope["type"] == "websocket":
        proto = b"wss" if tls else b"ws"
    else:
        proto = b"https" if tls else b"http"
    headers.append((b"host", host if pass_host_header and host else upstream_host))
    if peer := client_ip(scope).encode():
        headers += [(b"x-forwarded-for", peer), (b"x-real-ip", peer)]
    headers.append((b"x-forwarded-proto", proto))
    headers.append((b"x-forwarded-port", _forwarded_port(host, tls)))
    if host:
        headers.append((b"x-forwarded-host", host))
    headers.append((b"x-forwarded-server", _HOSTNAME))
    return headers


def response_headers(raw: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
    """The upstream's response headers minus hop-by-hop ones."""
    headers = [(name.lower(), value) for name, value in raw]
    skipped = HOP_BY_HOP | connection_listed(headers)
    return [(name, value) for name, value in headers if name not in skipped]


def connection_listed(headers: RawHeaders) -> set[bytes]:
    """Header names that a Connection header marks as hop-by-hop."""
    return {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
        if token.strip()
    }


def _forwarded_port(host: bytes, tls: bool) -> bytes:
    """The Host header's port, else the scheme's default (Traefik's forwardedPort)."""
    match = _HOST_PORT.fullmatch(host)
    if match and match.group(1):
        return match.group(1)
    return b"443" if tls else b"80"
