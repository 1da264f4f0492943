"""`RequestContextMiddleware`'s body limit: a body over MAX_BODY_BYTES is a 413 before it is
read whole."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Form

from servicekit.app import create_app
from servicekit.settings import ServiceSettings

LIMIT = 1024
SECURITY_HEADERS = ("x-content-type-options", "x-frame-options", "referrer-policy")


@pytest.fixture(scope="module")
def side_effects() -> list[str]:
    return []


@pytest.fixture(scope="module")
def limited_app(side_effects: list[str]) -> FastAPI:
    router = APIRouter()

    @router.post("/echo")
    async def echo(body: dict[str, str]) -> dict[str, int]:
        return {"keys": len(body)}

    @router.post("/form")
    async def form(name: str = Form()) -> dict[str, int]:
        return {"length": len(name)}

    @router.post("/no-body")
    async def no_body() -> dict[str, bool]:
        side_effects.append("ran")
        return {"ran": True}

    settings = ServiceSettings(SERVICE_NAME="demo", MAX_BODY_BYTES=LIMIT, ENVIRONMENT="test")
    return create_app(settings, routers=[router], title="Demo")


@pytest.fixture
async def limited(limited_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=limited_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        yield client


def _json_of_size(size: int) -> bytes:
    body = b'{"a": ""}'
    return body[:-2] + b"x" * (size - len(body)) + b'"}'


def _assert_413(response: httpx.Response) -> None:
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body too large"}
    assert response.headers["x-request-id"]
    for name in SECURITY_HEADERS:
        assert response.headers[name]


async def test_body_at_the_limit_is_accepted(limited: httpx.AsyncClient) -> None:
    response = await limited.post(
        "/api/v1/demo/echo",
        content=_json_of_size(LIMIT),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200
    assert response.json() == {"keys": 1}


async def test_declared_body_over_the_limit_is_413_and_the_route_never_runs(
    limited: httpx.AsyncClient, side_effects: list[str]
) -> None:
    response = await limited.post("/api/v1/demo/no-body", content=b"x" * (LIMIT + 1))
    _assert_413(response)
    assert side_effects == []


async def test_declared_json_body_over_the_limit_is_413(limited: httpx.AsyncClient) -> None:
    response = await limited.post(
        "/api/v1/demo/echo",
        content=_json_of_size(LIMIT + 1),
        headers={"content-type": "application/json"},
    )
    _assert_413(response)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/api/v1/demo/echo", "application/json"),
        ("/api/v1/demo/form", "application/x-www-form-urlencoded"),
    ],
)
async def test_streamed_body_is_refused_once_past_the_limit_without_reading_the_rest(
    limited: httpx.AsyncClient, path: str, content_type: str
) -> None:
    sent: list[int] = []

    async def endless_body() -> AsyncIterator[bytes]:
        for _ in range(10_000):  # 5 MB if it were all read
            sent.append(512)
            yield b"x" * 512

    # No Content-Length: httpx sends a generator chunked, so only counting can catch it.
    response = await limited.post(
        path, content=endless_body(), headers={"content-type": content_type}
    )
    _assert_413(response)
    assert sum(sent) <= LIMIT + 512


async def test_small_streamed_body_is_read_normally(limited: httpx.AsyncClient) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"name="
        yield b"x" * 100

    response = await limited.post(
        "/api/v1/demo/form",
        content=body(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert response.json() == {"length": 100}
