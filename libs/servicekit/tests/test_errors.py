"""Input the service cannot store or echo is the client's fault: a 4xx, never a 500."""

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Form
from pydantic import BaseModel
from sqlalchemy import BigInteger, cast, literal
from sqlmodel import select

from devstack.servers import PostgresServer, RedisServer
from servicekit.app import create_app
from servicekit.db import SessionDep
from servicekit.fields import Text
from servicekit.settings import ServiceSettings


class Named(BaseModel):
    name: str


class Skip(BaseModel):
    offset: int


class Login(BaseModel):
    username: Text


@pytest.fixture(scope="module")
async def bigint_app(postgres: PostgresServer, redis_server: RedisServer) -> AsyncIterator[FastAPI]:
    router = APIRouter()

    # A query parameter without bounds, handed to PostgreSQL as a bigint.
    @router.get("/skip")
    async def skip(session: SessionDep, offset: int) -> dict[str, int]:
        result = await session.exec(select(cast(literal(offset), BigInteger)))
        return {"offset": result.one()}

    @router.post("/skip")
    async def skip_from_body(session: SessionDep, body: Skip) -> dict[str, int]:
        result = await session.exec(select(cast(literal(body.offset), BigInteger)))
        return {"offset": result.one()}

    @router.post("/login")
    async def login(form: Annotated[Login, Form()]) -> Login:
        return form

    @router.post("/names")
    async def create_name(named: Named) -> Named:
        return named

    settings = ServiceSettings(
        SERVICE_NAME="demo",
        DATABASE_URL=postgres.dsn().replace("postgresql://", "postgresql+asyncpg://"),
        REDIS_URL=redis_server.url,
        RUN_EVENT_WORKERS=False,
        ENVIRONMENT="test",
    )
    app = create_app(settings, routers=[router], title="Demo")
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def bigint_client(bigint_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=bigint_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        yield client


async def test_integer_within_bigint_reaches_the_database(
    bigint_client: httpx.AsyncClient,
) -> None:
    response = await bigint_client.get("/api/v1/demo/skip", params={"offset": 2**63 - 1})
    assert response.status_code == 200
    assert response.json() == {"offset": 2**63 - 1}


async def test_integer_the_driver_cannot_encode_is_422_without_sql(
    bigint_client: httpx.AsyncClient,
) -> None:
    response = await bigint_client.get("/api/v1/demo/skip", params={"offset": 10**21})
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {"type": "value_error", "loc": ["query"], "msg": "A value is out of range or malformed"}
        ]
    }
    assert "SELECT" not in response.text


async def test_integer_the_driver_cannot_encode_in_a_body_is_422_at_the_body(
    bigint_client: httpx.AsyncClient,
) -> None:
    response = await bigint_client.post("/api/v1/demo/skip", json={"offset": 10**21})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"type": "value_error", "loc": ["body"], "msg": "A value is out of range or malformed"}
    ]


async def test_nul_in_a_text_form_field_is_422_naming_the_field(
    bigint_client: httpx.AsyncClient,
) -> None:
    response = await bigint_client.post("/api/v1/demo/login", data={"username": "a\x00b"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "username"]
    assert error["msg"] == "Value error, must not contain NUL characters"


async def test_json_nested_near_the_parser_limit_is_a_4xx_never_a_500(
    bigint_client: httpx.AsyncClient,
) -> None:
    # JSON parsing gives up near Python's recursion limit (400); just below it the body
    # parses, and echoing it back in the 422 must not overflow the stack either.
    statuses = set()
    for depth in range(850, 1001):
        response = await bigint_client.post(
            "/api/v1/demo/names",
            content='{"name": ' + "[" * depth + "]" * depth + "}",
            headers={"content-type": "application/json"},
        )
        statuses.add(response.status_code)
        assert response.status_code in (400, 422), depth
        assert "detail" in response.json()
    assert statuses == {400, 422}
