"""The gateway's configuration (gateway/traefik.yml and dynamic.yml) on the real Traefik binary.

Traefik runs as the native stack runs it (devstack.traefik's flags), in front of small
stand-in upstreams under uvicorn in threads, each on a free port. The stand-ins report what
they received and serve servicekit's real error pages, so these tests pin down what our
configuration does, not what an imitation of Traefik would do.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from starlette.middleware.base import RequestResponseEndpoint
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as websocket_connect
from websockets.typing import Subprotocol

from devstack.ports import free_port
from devstack.traefik import STATIC_CONFIG, flatten, native_overrides, static_flags, traefik_argv
from servicekit.gateway_pages import router as gateway_pages_router

SERVICES = ("auth", "users", "items", "notifications")
ALLOWED_ORIGIN = "http://localhost:3000"
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
}
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


# --- stand-in upstreams ------------------------------------------------------------------------


def upstream_app(name: str) -> FastAPI:
    """Reports what it received; answers chosen statuses; serves servicekit's error pages."""
    app = FastAPI()
    app.include_router(gateway_pages_router)

    @app.middleware("http")
    async def echo_request_id(request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        if request_id := request.headers.get("x-request-id"):
            response.headers["X-Request-ID"] = request_id
        return response

    @app.api_route("/{prefix:path}/status/{code:int}", methods=ALL_METHODS)
    async def status(code: int) -> Response:
        headers = {"Retry-After": "77"} if code in (429, 503) else None
        return JSONResponse({"detail": f"{name} says {code}"}, code, headers=headers)

    @app.websocket("/{prefix:path}/ws")
    async def websocket(socket: WebSocket) -> None:
        offered = socket.scope.get("subprotocols") or [None]
        await socket.accept(subprotocol=offered[0])
        while True:
            text = await socket.receive_text()
            if text == "headers":
                await socket.send_json({"service": name, "headers": dict(socket.headers)})
            elif text.startswith("close:"):
                await socket.close(code=int(text.removeprefix("close:")), reason="unauthorized")
                return
            else:
                await socket.send_text(text)

    @app.api_route("/{path:path}", methods=ALL_METHODS)
    async def echo(request: Request) -> Response:
        body = await request.body()
        headers = {"Vary": "Accept-Encoding"}
        received = {
            "service": name,
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": dict(request.headers),
            "body_bytes": len(body),
        }
        return JSONResponse(received, headers=headers)

    return app


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run `app` under uvicorn in a thread on a free port and yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1)
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
    return f"http://127.0.0.1:{free_port()}"


# --- Traefik -----------------------------------------------------------------------------------


@contextlib.contextmanager
def traefik(upstreams: Mapping[str, str], log_path: Path) -> Iterator[str]:
    """Traefik on gateway/, as the native stack runs it, with a small auth rate limit."""
    web_port, internal_port = free_port(), free_port()
    env = {
        **os.environ,
        **{f"{name.upper()}_UPSTREAM": url for name, url in upstreams.items()},
        "GATEWAY_INTERNAL_URL": f"http://127.0.0.1:{internal_port}",
        "GATEWAY_AUTH_RATE_AVERAGE": "1",
        "GATEWAY_AUTH_RATE_BURST": "3",
    }
    argv = traefik_argv(host="127.0.0.1", web_port=web_port, internal_port=internal_port)
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    url = f"http://127.0.0.1:{web_port}"
    try:
        # Ping first (Traefik is up), then a routed path (the file provider has loaded).
        for probe in (f"http://127.0.0.1:{internal_port}/ping", f"{url}/api/v1/auth/health"):
            wait_for_200(probe, process, log_path)
        yield url
    finally:
        process.terminate()
        process.wait(15)


def wait_for_200(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"traefik exited:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200:\n{log_path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, str]]:
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(serve(upstream_app(name))) for name in SERVICES}


@pytest.fixture(scope="module")
def gateway_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("traefik") / "gateway.log"


@pytest.fixture(scope="module")
def gateway(upstreams: dict[str, str], gateway_log: Path) -> Iterator[str]:
    with traefik(upstreams, gateway_log) as url:
        yield url


@pytest.fixture(scope="module")
def gateway_with_items_down(
    upstreams: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("traefik-down") / "gateway.log"
    with traefik({**upstreams, "items": unused_url()}, log_path) as url:
        yield url


def client(base_url: str, source_address: str = "127.0.0.1") -> httpx.Client:
    """An HTTP client; a distinct loopback source address is a distinct client to rate limits."""
    transport = httpx.HTTPTransport(local_address=source_address)
    return httpx.Client(base_url=base_url, transport=transport, timeout=5)


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name


# --- static configuration ----------------------------------------------------------------------


def test_every_key_of_traefik_yml_becomes_a_flag() -> None:
    static = yaml.safe_load(STATIC_CONFIG.read_text())
    leaves = dict(flatten(static))
    assert {"entryPoints.web.address", "ping.entryPoint", "accessLog.format"} <= set(leaves)
    flags = static_flags(STATIC_CONFIG)
    assert flags == [f"--{key}={value}" for key, value in leaves.items()]
    assert "--entryPoints.traefik.forwardedHeaders.trustedIPs=127.0.0.1/32,::1/128" in flags


def test_native_flags_override_only_addresses_and_the_dynamic_files_path() -> None:
    overrides = native_overrides(host="127.0.0.1", web_port=18000, internal_port=18080)
    native = static_flags(STATIC_CONFIG, overrides)
    as_compose = static_flags(STATIC_CONFIG)
    changed = {flag.split("=", 1)[0] for flag in set(native) - set(as_compose)}
    assert changed == {
        "--entryPoints.web.address",
        "--entryPoints.traefik.address",
        "--providers.file.filename",
    }
    assert "--providers.file.filename=/etc/traefik/dynamic.yml" in as_compose
    with pytest.raises(KeyError):
        static_flags(STATIC_CONFIG, {"entryPoints.web.adress": ":1"})


def test_traefik_accepts_the_flags_and_the_dynamic_file(gateway: str, gateway_log: Path) -> None:
    with client(gateway) as http:
        assert http.get("/api/v1/items/x").status_code == 200
    deadline = time.monotonic() + 10  # Traefik writes its access log asynchronously
    while True:
        lines = [json.loads(line) for line in gateway_log.read_text().splitlines() if line]
        # The access log is JSON, one object per request, like the services' logs.
        if any(line.get("RequestPath") == "/api/v1/items/x" for line in lines):
            break
        assert time.monotonic() < deadline, lines[-5:]
        time.sleep(0.1)
    problems = [line for line in lines if line.get("level") in ("error", "fatal")]
    assert problems == []


# --- routing -----------------------------------------------------------------------------------


def test_each_prefix_routes_to_its_service(gateway: str) -> None:
    with client(gateway) as http:
        for service in SERVICES:
            response = http.get(f"/api/v1/{service}/things", params={"page": "2"})
            assert response.status_code == 200
            received = response.json()
            assert received["service"] == service
            assert received["path"] == f"/api/v1/{service}/things"
            assert received["query"] == "page=2"
            assert_security_headers(response)
        head = http.head("/api/v1/items/things")
        assert head.status_code == 200
        assert head.content == b""


@pytest.mark.parametrize("path", ["/", "/api/v2/items", "/api/v1", "/apix", "/gateway-error/503"])
def test_paths_no_service_owns_are_a_json_404_with_every_header(gateway: str, path: str) -> None:
    with client(gateway) as http:
        response = http.post(path, headers={"Origin": ALLOWED_ORIGIN, "X-Request-ID": "lost-1"})
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert response.headers["x-request-id"] == "lost-1"
    assert_security_headers(response)


def test_credential_routes_are_rate_limited_and_the_rest_of_auth_is_not(gateway: str) -> None:
    with client(gateway, source_address="127.0.0.2") as http:
        for _ in range(3):  # the burst
            assert http.post("/api/v1/auth/token").status_code == 200
        # The higher-priority router covers exactly these paths...
        assert http.post("/api/v1/auth/token").status_code == 429
        assert http.post("/api/v1/auth/register").status_code == 429
        assert http.post("/api/v1/auth/password/reset").status_code == 429
        # ...while the rest of /api/v1/auth goes through the plain `auth` router.
        assert http.get("/api/v1/auth/me").status_code == 200
        assert http.post("/api/v1/auth/tokens").status_code == 200
        assert http.post("/api/v1/auth/password").status_code == 200
    with client(gateway, source_address="127.0.0.3") as other_client:
        assert other_client.post("/api/v1/auth/token").status_code == 200


# --- the path as the gateway routes it ------------------------------------------------------------

#: Every credential route the rate limit covers.
CREDENTIAL_ROUTES = ["token", "register", "password/forgot", "password/reset", "password/change"]
#: Other spellings of /api/v1/auth/<route> that a service would decode to the route itself.
SPELLINGS = {
    "encoded slash": "/api/v1/auth%2F{route}",
    "lower-case encoded slash": "/api/v1/auth%2f{route}",
    "encoded slash before auth": "/api/v1%2Fauth/{route}",
    "encoded slash inside": "/api/v1/auth/{encoded_route}",
    "encoded backslash": "/api/v1/auth%5C{route}",
    "double-encoded slash": "/api/v1/auth%252F{route}",
    "encoded letter": "/api/v1/%61uth/{route}",
    "doubled slash": "/api/v1/auth//{route}",
    "dot segment": "/api/v1/auth/./{route}",
    "dot-dot segment": "/api/v1/auth/x/../{route}",
    "trailing slash": "/api/v1/auth/{route}/",
}
#: An encoded /, \ or %: Traefik refuses the request before routing it.
REFUSED = re.compile("%(2F|5C|25)", re.IGNORECASE)
_addresses = iter(range(10, 250))


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("route", CREDENTIAL_ROUTES)
def test_a_credential_route_spelled_otherwise_is_still_rate_limited(
    gateway: str, route: str, spelling: str
) -> None:
    raw = SPELLINGS[spelling].format(route=route, encoded_route=route.replace("/", "%2F"))
    with client(gateway, source_address=f"127.0.17.{next(_addresses)}") as http:
        for _ in range(3):  # the burst, spent on the plain path
            assert http.post(f"/api/v1/auth/{route}").status_code == 200
        # httpx would normalise the path; the raw target goes on the wire as written.
        request = http.build_request("POST", gateway)
        request.url = request.url.copy_with(raw_path=raw.encode())
        response = http.send(request)
    assert response.status_code == (400 if REFUSED.search(raw) else 429), response.text


# --- rate limit --------------------------------------------------------------------------------


def test_the_rate_limits_429_is_json_with_retry_after_and_cors(gateway: str) -> None:
    with client(gateway, source_address="127.0.0.4") as http:
        statuses = [http.post("/api/v1/auth/register").status_code for _ in range(3)]
        limited = http.post(
            "/api/v1/auth/register", headers={"Origin": ALLOWED_ORIGIN, "X-Request-ID": "rl-1"}
        )
    assert statuses == [200, 200, 200]
    assert limited.status_code == 429
    assert limited.json() == {"detail": "Too Many Requests"}
    assert limited.headers["retry-after"] == "1"
    assert limited.headers["x-request-id"] == "rl-1"
    assert limited.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "Retry-After" in limited.headers["access-control-expose-headers"]
    assert_security_headers(limited)


def test_the_rate_limit_keys_on_the_tcp_peer_not_on_forwarded_headers(gateway: str) -> None:
    claims = [
        {"X-Forwarded-For": f"203.0.113.{n}", "X-Real-IP": f"198.51.100.{n}"} for n in range(4)
    ]
    claims += [{"Forwarded": f"for=192.0.2.{n}"} for n in range(4)]
    with client(gateway, source_address="127.0.0.5") as http, ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda h: http.post("/api/v1/auth/token", headers=h), claims))
    codes = [response.status_code for response in statuses]
    # A burst of 3 and 1/s: whatever each request claimed, the rest are refused.
    assert codes.count(200) <= 4, codes
    assert codes.count(429) >= len(claims) - 4, codes


def test_the_auth_services_own_429_reaches_the_client_unchanged(gateway: str) -> None:
    with client(gateway, source_address="127.0.0.6") as http:
        response = http.post("/api/v1/auth/password/status/429")
    assert response.status_code == 429
    assert response.json() == {"detail": "auth says 429"}
    assert response.headers["retry-after"] == "77"
    assert_security_headers(response)


# --- what Traefik answers itself, and what it leaves alone --------------------------------------


def test_an_unreachable_upstream_is_a_json_502_with_every_header(
    gateway_with_items_down: str,
) -> None:
    with client(gateway_with_items_down) as http:
        response = http.get(
            "/api/v1/items/x", headers={"Origin": ALLOWED_ORIGIN, "X-Request-ID": "down-1"}
        )
        others = [http.get(f"/api/v1/{name}/x").status_code for name in ("auth", "users")]
    assert response.status_code == 502
    assert response.json() == {"detail": "Bad Gateway"}
    assert response.headers["x-request-id"] == "down-1"
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert_security_headers(response)
    assert others == [200, 200]


def test_error_pages_render_while_the_dead_upstream_is_still_in_the_page_pool(
    gateway_with_items_down: str,
) -> None:
    # The page pool holds all four services and spreads requests over them; until a health
    # check marks items down, a page request may pick it and must be sent to another.
    with client(gateway_with_items_down) as http:
        responses = [http.get(f"/api/v1/items/{n}") for n in range(8)]
    assert [(r.status_code, r.json()) for r in responses] == [(502, {"detail": "Bad Gateway"})] * 8


@pytest.mark.parametrize("code", [404, 500, 503])
def test_the_services_own_errors_pass_through_unchanged(gateway: str, code: int) -> None:
    with client(gateway) as http:
        response = http.get(f"/api/v1/users/status/{code}")
    assert response.status_code == code
    assert response.json() == {"detail": f"users says {code}"}
    assert_security_headers(response)


# --- forwarded headers and request ids ---------------------------------------------------------


def test_client_forwarding_headers_are_replaced_and_request_ids_pass(gateway: str) -> None:
    spoofed = {
        "X-Forwarded-For": "203.0.113.7",
        "X-Real-IP": "203.0.113.7",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
        "X-Request-ID": "req-42",
    }
    with client(gateway, source_address="127.0.0.7") as http:
        response = http.get("/api/v1/users/me", headers=spoofed)
    received = response.json()["headers"]
    host = gateway.removeprefix("http://")
    assert received["x-forwarded-for"] == "127.0.0.7"
    assert received["x-real-ip"] == "127.0.0.7"
    assert received["x-forwarded-host"] == host
    assert received["x-forwarded-proto"] == "http"
    assert received["host"] == host  # passHostHeader
    assert received["x-request-id"] == "req-42"
    assert response.headers["x-request-id"] == "req-42"


def test_bodies_pass_whole_to_the_service(gateway: str) -> None:
    body = os.urandom(3 * 1024 * 1024)
    with client(gateway) as http:
        response = http.post("/api/v1/items/upload", content=body)
    assert response.json()["body_bytes"] == len(body)


# --- CORS --------------------------------------------------------------------------------------


def preflight(http: httpx.Client, origin: str, path: str = "/api/v1/items/42") -> httpx.Response:
    return http.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "content-type,if-match",
        },
    )


@pytest.mark.parametrize("path", ["/api/v1/items/42", "/api/v1/auth/token"])
def test_preflight_for_an_allowed_origin_is_answered_per_the_contract(
    gateway: str, path: str
) -> None:
    with client(gateway) as http:
        response = preflight(http, ALLOWED_ORIGIN, path)
    assert response.status_code == 200
    assert response.content == b""  # answered by the gateway, never reaching the service
    headers = response.headers
    assert headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert headers["access-control-allow-credentials"] == "true"
    assert headers["access-control-allow-methods"] == "GET,POST,PUT,PATCH,DELETE,OPTIONS"
    assert (
        headers["access-control-allow-headers"]
        == "Authorization,Content-Type,If-Match,If-None-Match,X-Request-ID"
    )
    assert headers["access-control-max-age"] == "600"
    assert headers["vary"] == "Origin"
    assert_security_headers(response)


def test_preflight_for_a_refused_origin_gets_no_allow_origin(gateway: str) -> None:
    with client(gateway) as http:
        response = preflight(http, "http://evil.example")
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["vary"] == "Origin"
    assert_security_headers(response)


def test_an_options_request_that_is_no_preflight_reaches_the_service(gateway: str) -> None:
    with client(gateway) as http:
        response = http.options("/api/v1/items/42")
    assert response.json()["method"] == "OPTIONS"


def test_actual_responses_carry_cors_headers(gateway: str) -> None:
    with client(gateway) as http:
        allowed = http.get("/api/v1/items/42", headers={"Origin": "http://localhost:5173"})
        refused = http.get("/api/v1/items/42", headers={"Origin": "http://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert (
        allowed.headers["access-control-expose-headers"]
        == "ETag,Location,X-Request-ID,Retry-After,WWW-Authenticate,Allow"
    )
    assert allowed.headers["vary"] == "Accept-Encoding,Origin"  # the upstream's Vary is kept
    assert "access-control-allow-origin" not in refused.headers


# --- WebSocket ---------------------------------------------------------------------------------


def test_websocket_upgrade_reaches_notifications_with_its_subprotocol(gateway: str) -> None:
    url = gateway.replace("http://", "ws://") + "/api/v1/notifications/ws"
    with websocket_connect(url, subprotocols=[Subprotocol("notifications.v1")]) as ws:
        assert ws.subprotocol == "notifications.v1"
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send("headers")
        seen = json.loads(ws.recv(timeout=5))
        assert seen["service"] == "notifications"
        assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
        ws.send("close:4401")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "unauthorized")
