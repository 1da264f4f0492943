"""What every service gets from `create_app`: docs, health, readiness, ids, headers, errors."""

import asyncio
import io
import json
import logging

import httpx
import pytest
from fastapi import FastAPI

from devstack.servers import PostgresServer, RedisServer
from servicekit import revocation
from servicekit.logging import JsonFormatter

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
}


async def test_health_is_200(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/demo/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_docs_and_schema_are_served_under_the_service_prefix(
    client: httpx.AsyncClient,
) -> None:
    docs = await client.get("/api/v1/demo/docs")
    assert docs.status_code == 200
    assert "/api/v1/demo/openapi.json" in docs.text
    assert (await client.get("/api/v1/demo/redoc")).status_code == 200
    schema = (await client.get("/api/v1/demo/openapi.json")).json()
    assert "/api/v1/demo/things" in schema["paths"]


async def test_docs_load_their_assets_from_the_service_not_a_cdn(
    client: httpx.AsyncClient,
) -> None:
    docs = (await client.get("/api/v1/demo/docs")).text
    redoc = (await client.get("/api/v1/demo/redoc")).text
    assert "cdn." not in docs and "cdn." not in redoc
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        response = await client.get(f"/api/v1/demo/docs-assets/{asset}")
        assert response.status_code == 200
        assert len(response.content) > 10_000
    redirect = await client.get("/api/v1/demo/docs/oauth2-redirect")
    assert redirect.status_code == 200 and "oauth2" in redirect.text.lower()


async def test_ready_is_200_when_database_and_redis_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/demo/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


async def _wait_for_ready_status(client: httpx.AsyncClient, status: int) -> httpx.Response:
    for _ in range(50):
        response = await client.get("/api/v1/demo/ready")
        if response.status_code == status:
            return response
        await asyncio.sleep(0.2)
    return response


async def test_ready_names_redis_when_it_is_down_and_recovers_without_restart(
    client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    redis_server.stop()
    try:
        response = await _wait_for_ready_status(client, 503)
        assert response.status_code == 503
        assert response.json()["detail"] == "Not ready: redis unavailable"
        assert response.json()["checks"] == {"database": "ok", "redis": "unavailable"}
    finally:
        redis_server.start()
    assert (await _wait_for_ready_status(client, 200)).status_code == 200


async def test_ready_names_the_database_when_it_is_down_and_recovers_without_restart(
    client: httpx.AsyncClient, postgres: PostgresServer
) -> None:
    postgres.stop()
    try:
        response = await _wait_for_ready_status(client, 503)
        assert response.status_code == 503
        assert response.json()["detail"] == "Not ready: database unavailable"
    finally:
        postgres.start()
    assert (await _wait_for_ready_status(client, 200)).status_code == 200


async def test_read_pool_binds_parameters_by_name(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/demo/numbers", params={"below": 5})).json() == {
        "numbers": [1, 2, 3, 4]
    }
    assert (await client.get("/api/v1/demo/numbers/7")).json() == {"n": 7, "square": 49}
    missing = await client.get("/api/v1/demo/numbers/12")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "No such number"}


async def test_read_pool_answers_503_while_the_database_is_down_and_recovers(
    client: httpx.AsyncClient, postgres: PostgresServer
) -> None:
    assert (await client.get("/api/v1/demo/numbers/3")).status_code == 200  # a pooled connection
    postgres.stop()
    try:
        for path in ("/api/v1/demo/numbers/3", "/api/v1/demo/numbers"):
            response = await client.get(path)
            assert response.status_code == 503, response.text
            assert response.json()["detail"].endswith("unavailable; try again shortly")
    finally:
        postgres.start()
    assert (await _wait_for_ready_status(client, 200)).status_code == 200
    assert (await client.get("/api/v1/demo/numbers/3")).json() == {"n": 3, "square": 9}


async def test_protected_route_is_503_not_500_while_redis_is_down(
    client: httpx.AsyncClient, demo_app: FastAPI, redis_server: RedisServer
) -> None:
    headers = demo_app.state.tokens.headers()
    await revocation.mark_restored(demo_app.state.redis)  # earlier tests restarted Redis
    assert (await client.get("/api/v1/demo/whoami", headers=headers)).status_code == 200
    redis_server.stop()
    try:
        response = await client.get("/api/v1/demo/whoami", headers=headers)
        assert response.status_code == 503
        assert response.json() == {"detail": "Token revocation cannot be checked"}
    finally:
        redis_server.start()
    # This Redis keeps nothing across a restart: until the revocations are back, no token is
    # accepted, since one of them could have been revoked.
    lost = await _wait_for_whoami(client, headers, 503)
    assert lost.json() == {"detail": "Token revocations are being restored"}
    await revocation.mark_restored(demo_app.state.redis)  # what the auth service does
    assert (await _wait_for_whoami(client, headers, 200)).status_code == 200


async def _wait_for_whoami(
    client: httpx.AsyncClient, headers: dict[str, str], status: int
) -> httpx.Response:
    for _ in range(50):
        response = await client.get("/api/v1/demo/whoami", headers=headers)
        if response.status_code == status:
            return response
        await asyncio.sleep(0.1)
    return response


async def test_request_id_is_generated_when_absent(client: httpx.AsyncClient) -> None:
    first = await client.get("/api/v1/demo/health")
    second = await client.get("/api/v1/demo/health")
    assert len(first.headers["x-request-id"]) == 32
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_request_id_from_the_caller_is_kept(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/demo/health", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


async def test_unsafe_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/demo/health", headers={"X-Request-ID": "a b\tc" * 50})
    assert response.headers["x-request-id"] != "a b\tc" * 50
    assert len(response.headers["x-request-id"]) == 32


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/api/v1/demo/health", None, 200),
        ("GET", "/api/v1/demo/nowhere", None, 404),
        ("GET", "/api/v1/demo/things/x", None, 404),
        ("POST", "/api/v1/demo/things", b"{}", 422),
        ("GET", "/api/v1/demo/boom", None, 500),
    ],
)
async def test_every_answer_carries_request_id_and_security_headers(
    client: httpx.AsyncClient, method: str, path: str, body: bytes | None, status: int
) -> None:
    response = await client.request(
        method, path, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert response.headers["x-request-id"]
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert "detail" in response.json() or status == 200


async def test_domain_error_becomes_its_status_with_detail(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/demo/things/nothing")
    assert response.status_code == 404
    assert response.json() == {"detail": "Thing not found"}


async def test_unexpected_error_is_a_generic_500_without_internals(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/demo/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}
    assert "secret" not in response.text


@pytest.mark.parametrize(
    "raw_body",
    [
        b'{"name": "ok", "price": 1e999}',
        b'{"name": "\\ud800", "price": 1}',
        b'{"name": "a\\u0000b", "price": 1}',
        b'{"name": "ok", "price": "NaN"}',
        b"not json",
    ],
)
async def test_unserialisable_input_is_a_clean_422(
    client: httpx.AsyncClient, raw_body: bytes
) -> None:
    response = await client.post(
        "/api/v1/demo/things", content=raw_body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail
    assert all({"type", "loc", "msg"} <= set(error) for error in detail)


@pytest.mark.parametrize("sqlstate", ["57P03", "57P01", "08006"])
async def test_a_database_shutting_down_or_starting_is_unavailable(sqlstate: str) -> None:
    from sqlalchemy import exc as sa_exc

    from servicekit.db import is_database_unavailable

    class StartingUp(Exception):
        pass

    orig = StartingUp("the database system is starting up")
    orig.sqlstate = sqlstate  # type: ignore[attr-defined]
    assert is_database_unavailable(sa_exc.DBAPIError("SELECT 1", {}, orig))
    assert not is_database_unavailable(sa_exc.DBAPIError("SELECT 1", {}, ValueError("syntax")))


@pytest.mark.parametrize(
    ("status", "detail", "retry_after"),
    [
        (404, "Not Found", None),
        (429, "Too Many Requests", "1"),
        (502, "Bad Gateway", None),
        (503, "Service Unavailable", "5"),
        (504, "Gateway Timeout", None),
    ],
)
async def test_gateway_error_pages_are_the_contracts_json(
    client: httpx.AsyncClient, status: int, detail: str, retry_after: str | None
) -> None:
    response = await client.get(f"/gateway-error/{status}", headers={"X-Request-ID": "page-1"})
    assert response.status_code == status
    assert response.json() == {"detail": detail}
    assert response.headers.get("retry-after") == retry_after
    assert response.headers["x-request-id"] == "page-1"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_gateway_error_pages_stay_out_of_the_schema_and_refuse_odd_statuses(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/api/v1/demo/openapi.json")).json()
    assert not [path for path in schema["paths"] if "gateway-error" in path]
    assert (await client.get("/gateway-error/200")).json() == {"detail": "OK"}
    for odd in ("302", "999", "abc"):
        response = await client.get(f"/gateway-error/{odd}")
        assert response.status_code in (404, 422), odd
        assert "detail" in response.json()


async def test_every_request_is_logged_once_with_its_id_status_and_duration(
    client: httpx.AsyncClient,
) -> None:
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(JsonFormatter("demo"))
    access = logging.getLogger("servicekit.access")
    access.addHandler(handler)
    try:
        response = await client.get("/api/v1/demo/nowhere", headers={"X-Request-ID": "log-me-1"})
    finally:
        access.removeHandler(handler)
    assert response.status_code == 404
    lines = [json.loads(line) for line in written.getvalue().splitlines()]
    assert len(lines) == 1
    assert lines[0]["request_id"] == "log-me-1"
    assert (lines[0]["method"], lines[0]["path"]) == ("GET", "/api/v1/demo/nowhere")
    assert lines[0]["status"] == 404
    assert lines[0]["duration_ms"] >= 0


async def test_a_trailing_slash_redirect_never_names_the_requests_host(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/demo/health/", headers={"Host": "evil.example"})
    assert response.status_code == 307
    assert response.headers["location"] == "/api/v1/demo/health"
