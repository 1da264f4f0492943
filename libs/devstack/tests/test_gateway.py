"""End-to-end tests of the native gateway over real sockets.

Upstream services and gateways run under uvicorn in background threads, each on its own free
port; the tests talk to them with httpx and the websockets client. The main gateway serves the
real gateway/dynamic.yml, pointed at the test upstreams through its template variables, so
these tests also pin down what that file does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as websocket_connect
from websockets.typing import Subprotocol

from devstack.gateway import build_app, uvicorn_config

DYNAMIC_YML = Path(__file__).resolve().parents[3] / "gateway" / "dynamic.yml"
SERVICES = ("auth", "users", "items", "notifications")
ALLOWED_ORIGIN = "http://localhost:3000"
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
}
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


# --- test upstream -----------------------------------------------------------------------------


class Signals:
    """Events shared between the tests (main thread) and the upstream servers (their threads)."""

    def __init__(self) -> None:
        self.upload_started = threading.Event()
        self.release_stream = threading.Event()
        self.websocket_closes: list[tuple[int, str]] = []


SIGNALS = Signals()


def upstream_app(name: str) -> Starlette:
    """A tiny stand-in service that reports what it received."""

    async def echo(request: Request) -> Response:
        headers = {"Vary": "Accept-Encoding"}
        if request_id := request.headers.get("x-request-id"):
            headers["X-Request-ID"] = request_id
        received = {
            "service": name,
            "method": request.method,
            "raw_path": request.scope["raw_path"].decode(),
            "query": request.scope["query_string"].decode(),
            "headers": request.headers.items(),
        }
        return JSONResponse(received, headers=headers)

    async def upload(request: Request) -> Response:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.stream():
            SIGNALS.upload_started.set()
            digest.update(chunk)
            size += len(chunk)
        return JSONResponse({"size": size, "sha256": digest.hexdigest()})

    async def download(request: Request) -> Response:
        size = int(request.query_params["size"])

        async def chunks() -> Any:
            for offset in range(0, size, len(BLOCK)):
                yield BLOCK[: size - offset]

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    async def held(request: Request) -> Response:
        async def chunks() -> Any:
            yield b"first\n"
            await asyncio.to_thread(SIGNALS.release_stream.wait, 10)
            yield b"second\n"

        return StreamingResponse(chunks(), media_type="text/plain")

    async def status(request: Request) -> Response:
        code = request.path_params["code"]
        return PlainTextResponse(f"status {code}", status_code=code)

    async def slow(request: Request) -> Response:
        await asyncio.sleep(float(request.query_params.get("seconds", "1")))
        return await echo(request)

    async def websocket_closes(request: Request) -> Response:
        return JSONResponse(SIGNALS.websocket_closes)

    async def websocket(socket: WebSocket) -> None:
        offered = socket.scope.get("subprotocols") or [None]
        request_id = socket.headers.get("x-request-id")
        accept_headers = [(b"x-request-id", request_id.encode())] if request_id else None
        await socket.accept(subprotocol=offered[0], headers=accept_headers)
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                SIGNALS.websocket_closes.append((message["code"], message.get("reason") or ""))
                return
            text = message.get("text")
            if text == "headers":
                await socket.send_json({"service": name, "headers": dict(socket.headers)})
            elif text is not None and text.startswith("close:"):
                await socket.close(code=int(text.removeprefix("close:")), reason="unauthorized")
                return
            elif text is not None:
                await socket.send_text(text)
            else:
                await socket.send_bytes(message["bytes"])

    async def websocket_forbidden(socket: WebSocket) -> None:
        await socket.close(code=1008)  # before accepting: the handshake gets a 403

    return Starlette(
        routes=[
            Route("/{prefix:path}/upload", upload, methods=["POST"]),
            Route("/{prefix:path}/download", download),
            Route("/{prefix:path}/held", held),
            Route("/{prefix:path}/status/{code:int}", status),
            Route("/{prefix:path}/slow", slow),
            Route("/{prefix:path}/websocket-closes", websocket_closes),
            WebSocketRoute("/{prefix:path}/ws", websocket),
            WebSocketRoute("/{prefix:path}/ws-forbidden", websocket_forbidden),
            Route("/{path:path}", echo, methods=ALL_METHODS),
        ]
    )


BLOCK = bytes(range(256)) * 256  # 64 KiB


# --- servers -----------------------------------------------------------------------------------


@contextlib.contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread on a free port and yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn_config(
        app, "127.0.0.1", port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def unused_url() -> str:
    """A URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, str]]:
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(serve(upstream_app(name))) for name in SERVICES}


@pytest.fixture(scope="module")
def gateway(upstreams: dict[str, str]) -> Iterator[str]:
    """The real gateway/dynamic.yml, with a small auth rate limit: 1/s, burst 3."""
    env = {f"{name.upper()}_UPSTREAM": url for name, url in upstreams.items()}
    env |= {"GATEWAY_AUTH_RATE_AVERAGE": "1", "GATEWAY_AUTH_RATE_BURST": "3"}
    with serve(build_app(DYNAMIC_YML, env)) as url:
        yield url


EXTRA_CONFIG = """
http:
  routers:
    down:
      entryPoints: [web]
      rule: "PathPrefix(`/down`)"
      middlewares: [security-headers]
      service: down
    pool:
      entryPoints: [web]
      rule: "PathPrefix(`/pool`)"
      service: pool
    slow:
      entryPoints: [web]
      rule: "PathPrefix(`/slow`)"
      service: slow
    wide:
      entryPoints: [web]
      rule: "PathPrefix(`/prio`)"
      priority: 100
      service: users
    narrow:
      entryPoints: [web]
      rule: "PathPrefix(`/prio/narrow`)"
      service: items
  middlewares:
    security-headers:
      headers:
        contentTypeNosniff: true
        frameDeny: true
        referrerPolicy: strict-origin-when-cross-origin
  services:
    down:
      loadBalancer:
        servers: [{url: '{{ env "DEAD_URL" }}'}]
    pool:
      loadBalancer:
        servers: [{url: '{{ env "USERS_URL" }}'}, {url: '{{ env "ITEMS_URL" }}'}]
    slow:
      loadBalancer:
        serversTransport: impatient
        servers: [{url: '{{ env "ITEMS_URL" }}'}]
    users:
      loadBalancer:
        servers: [{url: '{{ env "USERS_URL" }}'}]
    items:
      loadBalancer:
        servers: [{url: '{{ env "ITEMS_URL" }}'}]
  serversTransports:
    impatient:
      forwardingTimeouts:
        responseHeaderTimeout: 300ms
"""


@pytest.fixture(scope="module")
def extra_gateway(
    upstreams: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A gateway for what the real file does not use: failures, round-robin, timeouts."""
    path = tmp_path_factory.mktemp("gateway") / "dynamic.yml"
    path.write_text(EXTRA_CONFIG)
    env = {
        "DEAD_URL": unused_url(),
        "USERS_URL": upstreams["users"],
        "ITEMS_URL": upstreams["items"],
    }
    with serve(build_app(path, env)) as url:
        yield url


def client(base_url: str, source_address: str = "127.0.0.1") -> httpx.Client:
    """An HTTP client; a distinct loopback source address is a distinct client to rate limits."""
    transport = httpx.HTTPTransport(local_address=source_address)
    return httpx.Client(base_url=base_url, transport=transport, timeout=5)


def websocket_url(base_url: str, path: str) -> str:
    return base_url.replace("http://", "ws://") + path


def raw_request(base_url: str, target: str) -> tuple[int, bytes]:
    """Send a request line exactly as written (httpx would clean the path itself)."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name


# --- routing -----------------------------------------------------------------------------------


def test_each_prefix_routes_to_its_service(gateway: str) -> None:
    with client(gateway) as http:
        for service in SERVICES:
            response = http.get(f"/api/v1/{service}/things", params={"page": "2"})
            assert response.status_code == 200
            received = response.json()
            assert received["service"] == service
            assert received["raw_path"] == f"/api/v1/{service}/things"
            assert received["query"] == "page=2"
        head = http.head("/api/v1/items/things")
        assert head.status_code == 200
        assert head.content == b""
        assert int(head.headers["content-length"]) > 0


def test_paths_no_service_owns_go_to_the_fallback_router_with_every_header(gateway: str) -> None:
    with client(gateway) as http:
        for path in ("/", "/api/v2/items", "/api/v1"):
            response = http.get(path)
            # The fallback router hands them to the auth service, which answers its JSON 404;
            # the echo upstream here says who got them.
            assert response.json()["service"] == "auth"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-content-type-options"] == "nosniff"


def test_unmatched_paths_get_traefiks_own_404(extra_gateway: str) -> None:
    with client(extra_gateway) as http:
        response = http.get("/api/v2/nothing")
        assert response.status_code == 404
        assert response.text == "404 page not found\n"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        # Go's http.NotFound sets nosniff; router middlewares never run for these (as in
        # Traefik): that is why gateway/dynamic.yml has a fallback router.
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "x-frame-options" not in response.headers


def test_paths_are_sanitized_before_routing(gateway: str) -> None:
    status, body = raw_request(gateway, "/api/v1/items/..//users/./%61ccounts")
    assert status == 200
    assert b'"service":"users"' in body
    assert b'"raw_path":"/api/v1/users/accounts"' in body
    # Go's proxy turns query semicolons into ampersands.
    assert b'"query":"a=1&b=2"' in raw_request(gateway, "/api/v1/items/q?a=1;b=2")[1]
    # Ambiguous encoded characters are refused before routing, as by Traefik's entry point.
    assert raw_request(gateway, "/api/v1/items/a%2Fb")[0] == 400


def test_explicit_priority_beats_rule_length(extra_gateway: str) -> None:
    with client(extra_gateway) as http:
        assert http.get("/prio/narrow/x").json()["service"] == "users"


def test_servers_are_used_round_robin(extra_gateway: str) -> None:
    with client(extra_gateway) as http:
        served = [http.get("/pool/x").json()["service"] for _ in range(4)]
    assert served in (["users", "items"] * 2, ["items", "users"] * 2)


# --- rate limiting -----------------------------------------------------------------------------


def test_rate_limited_routes_answer_429_after_the_burst(gateway: str) -> None:
    with client(gateway, source_address="127.0.0.2") as http:
        for _ in range(3):  # the burst
            assert http.post("/api/v1/auth/token").status_code == 200
        limited = http.post("/api/v1/auth/token", headers={"Origin": ALLOWED_ORIGIN})
        assert limited.status_code == 429
        assert limited.text == "Too Many Requests"
        assert limited.headers["retry-after"] == "1"
        assert limited.headers["x-retry-in"].endswith("ms")
        assert limited.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        assert_security_headers(limited)
        # The higher-priority router covers exactly these paths...
        assert http.post("/api/v1/auth/register").status_code == 429
        assert http.post("/api/v1/auth/password/reset").status_code == 429
        # ...while the rest of /api/v1/auth goes through the plain `auth` router.
        assert http.get("/api/v1/auth/me").status_code == 200
        assert http.post("/api/v1/auth/tokens").status_code == 200
    with client(gateway, source_address="127.0.0.3") as other_client:
        assert other_client.post("/api/v1/auth/token").status_code == 200


def test_rate_limit_ignores_client_forwarded_headers(gateway: str) -> None:
    with client(gateway, source_address="127.0.0.4") as http:
        for number in range(3):
            spoofed = {
                "X-Forwarded-For": f"203.0.113.{number}",
                "X-Real-IP": f"198.51.100.{number}",
                "Forwarded": f"for=192.0.2.{number}",
            }
            assert http.post("/api/v1/auth/token", headers=spoofed).status_code == 200
        spoofed = {"X-Forwarded-For": "203.0.113.99", "X-Real-IP": "198.51.100.99"}
        assert http.post("/api/v1/auth/token", headers=spoofed).status_code == 429


# --- forwarded headers -------------------------------------------------------------------------


def test_client_forwarding_headers_are_replaced(gateway: str) -> None:
    spoofed = {
        "X-Forwarded-For": "203.0.113.7",
        "X-Real-IP": "203.0.113.7",
        "Forwarded": "for=203.0.113.7",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
        "X-Request-ID": "req-42",
        "Connection": "X-Hop",
        "X-Hop": "must not cross",
    }
    with client(gateway) as http:
        response = http.get("/api/v1/users/me", headers=spoofed)
    received = dict(response.json()["headers"])
    host = gateway.removeprefix("http://")
    assert received["x-forwarded-for"] == "127.0.0.1"
    assert received["x-real-ip"] == "127.0.0.1"
    assert "forwarded" not in received
    assert received["x-forwarded-host"] == host
    assert received["x-forwarded-proto"] == "http"
    assert received["x-forwarded-port"] == host.split(":")[1]
    assert received["host"] == host  # passHostHeader
    assert received["x-request-id"] == "req-42"
    assert "x-hop" not in received
    assert response.headers["x-request-id"] == "req-42"


# --- CORS and security headers -----------------------------------------------------------------


def preflight(http: httpx.Client, origin: str) -> httpx.Response:
    return http.options(
        "/api/v1/items/42",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "content-type,if-match",
        },
    )


def test_preflight_for_an_allowed_origin_is_answered_by_the_gateway(gateway: str) -> None:
    with client(gateway) as http:
        response = preflight(http, ALLOWED_ORIGIN)
    assert response.status_code == 200
    assert response.content == b""  # answered by the gateway, never reaching the service
    headers = response.headers
    assert headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert headers["access-control-allow-credentials"] == "true"
    assert headers["access-control-allow-methods"] == "GET,POST,PUT,PATCH,DELETE,OPTIONS"
    assert (
        headers["access-control-allow-headers"]
        == "Authorization,Content-Type,If-Match,X-Request-ID"
    )
    assert headers["access-control-max-age"] == "600"
    assert headers["vary"] == "Origin"
    assert_security_headers(response)


def test_preflight_for_a_refused_origin_gets_no_allow_origin(gateway: str) -> None:
    with client(gateway) as http:
        response = preflight(http, "http://evil.example")
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    assert_security_headers(response)


def test_actual_responses_carry_cors_headers(gateway: str) -> None:
    with client(gateway) as http:
        allowed = http.get("/api/v1/items/42", headers={"Origin": "http://localhost:5173"})
        refused = http.get("/api/v1/items/42", headers={"Origin": "http://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert (
        allowed.headers["access-control-expose-headers"] == "ETag,Location,X-Request-ID,Retry-After"
    )
    assert allowed.headers["vary"] == "Accept-Encoding,Origin"  # the upstream's Vary is kept
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize(
    "path", ["/api/v1/items/42", "/api/v1/items/status/404", "/api/v1/notifications/status/500"]
)
def test_security_headers_on_upstream_responses(gateway: str, path: str) -> None:
    with client(gateway) as http:
        assert_security_headers(http.get(path))


# --- streaming ---------------------------------------------------------------------------------


def test_large_request_body_is_streamed(gateway: str) -> None:
    SIGNALS.upload_started.clear()
    size = 32 * 1024 * 1024
    reached_upstream_early: list[bool] = []

    def body() -> Iterator[bytes]:
        yield BLOCK
        # A buffering gateway would hold this first block until the body is complete.
        reached_upstream_early.append(SIGNALS.upload_started.wait(5))
        for _ in range(size // len(BLOCK) - 1):
            yield BLOCK

    with client(gateway) as http:
        response = http.post("/api/v1/items/upload", content=body())
    assert reached_upstream_early == [True]
    expected = hashlib.sha256(BLOCK * (size // len(BLOCK))).hexdigest()
    assert response.json() == {"size": size, "sha256": expected}

    fixed_length = BLOCK * 64  # sent with Content-Length rather than chunked
    with client(gateway) as http:
        response = http.post("/api/v1/items/upload", content=fixed_length)
    assert response.json()["sha256"] == hashlib.sha256(fixed_length).hexdigest()


def test_large_response_body_is_streamed(gateway: str) -> None:
    size = 32 * 1024 * 1024 + 5
    with client(gateway) as http:
        response = http.get("/api/v1/items/download", params={"size": str(size)})
    digest = hashlib.sha256()
    for offset in range(0, size, len(BLOCK)):
        digest.update(BLOCK[: size - offset])
    assert len(response.content) == size
    assert hashlib.sha256(response.content).hexdigest() == digest.hexdigest()

    SIGNALS.release_stream.clear()
    with client(gateway) as http, http.stream("GET", "/api/v1/items/held") as streamed:
        chunks = streamed.iter_raw()
        # The upstream holds the rest back until we have seen the first chunk: a buffering
        # gateway would time out here.
        assert next(chunks) == b"first\n"
        SIGNALS.release_stream.set()
        assert b"".join(chunks) == b"second\n"


# --- WebSocket ---------------------------------------------------------------------------------


def test_websocket_messages_subprotocol_and_headers_pass_through(gateway: str) -> None:
    url = websocket_url(gateway, "/api/v1/notifications/ws")
    with websocket_connect(
        url,
        subprotocols=[Subprotocol("notifications.v1")],
        additional_headers={"X-Request-ID": "ws-1"},
    ) as ws:
        assert ws.subprotocol == "notifications.v1"
        assert ws.response is not None
        assert ws.response.headers["X-Request-ID"] == "ws-1"
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=5) == b"\x00\x01binary"
        ws.send("headers")
        seen = json.loads(ws.recv(timeout=5))
    assert seen["service"] == "notifications"
    assert seen["headers"]["x-request-id"] == "ws-1"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["x-forwarded-proto"] == "ws"
    assert seen["headers"]["host"] == gateway.removeprefix("http://")


def test_websocket_close_codes_pass_through_both_ways(gateway: str) -> None:
    url = websocket_url(gateway, "/api/v1/notifications/ws")
    with websocket_connect(url) as ws:
        ws.send("close:4401")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "unauthorized")

    SIGNALS.websocket_closes.clear()
    with websocket_connect(url) as ws:
        ws.close(code=4000, reason="client done")
    deadline = time.monotonic() + 5
    while not SIGNALS.websocket_closes and time.monotonic() < deadline:
        time.sleep(0.02)
    assert SIGNALS.websocket_closes == [(4000, "client done")]


def test_websocket_handshake_refusals_are_relayed(gateway: str, extra_gateway: str) -> None:
    cases = [
        (websocket_url(gateway, "/api/v1/notifications/ws-forbidden"), 403),
        (websocket_url(extra_gateway, "/nowhere"), 404),
        (websocket_url(extra_gateway, "/down/ws"), 502),
    ]
    for url, status in cases:
        with pytest.raises(InvalidStatus) as refused:
            websocket_connect(url, open_timeout=5)
        assert refused.value.response.status_code == status, url


# --- upstream failures -------------------------------------------------------------------------


def test_unreachable_upstream_gives_502(extra_gateway: str) -> None:
    with client(extra_gateway) as http:
        response = http.get("/down/anything")
    assert response.status_code == 502
    assert response.text == "Bad Gateway"
    assert_security_headers(response)


def test_response_header_timeout_gives_504(extra_gateway: str) -> None:
    with client(extra_gateway) as http:
        started = time.monotonic()
        response = http.get("/slow/slow", params={"seconds": "1"})
    assert response.status_code == 504
    assert response.text == "Gateway Timeout"
    assert time.monotonic() - started < 1


# --- command line ------------------------------------------------------------------------------


def test_cli_serves_the_configuration(upstreams: dict[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, **{f"{name.upper()}_UPSTREAM": url for name, url in upstreams.items()}}
    command = [sys.executable, "-m", "devstack.gateway", "--config", str(DYNAMIC_YML)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, env=env)  # noqa: S603 - our own interpreter and module
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/v1/users/me", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        assert response.json()["service"] == "users"
    finally:
        process.terminate()
        process.wait(10)
