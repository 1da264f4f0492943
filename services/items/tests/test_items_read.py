"""GET /api/v1/items/{id}: one item, only for its owner (or an administrator)."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from servicekit_testing import TokenFactory

ITEMS = "/api/v1/items"
CreateItem = Callable[..., Awaitable[dict[str, Any]]]


async def test_read_item_is_200_with_etag(
    client: httpx.AsyncClient, alice: dict[str, str], create_item: CreateItem
) -> None:
    item = await create_item(title="Desk")

    response = await client.get(f"{ITEMS}/{item['id']}", headers=alice)

    assert response.status_code == 200
    assert response.json() == item
    assert response.headers["ETag"] == f'"{uuid.UUID(item["id"]).hex}-1"'
    assert response.headers["X-Request-ID"]


async def test_read_another_users_item_is_404(
    client: httpx.AsyncClient, bob: dict[str, str], create_item: CreateItem
) -> None:
    item = await create_item()

    response = await client.get(f"{ITEMS}/{item['id']}", headers=bob)

    assert response.status_code == 404
    assert response.json() == {"detail": "Item not found"}
    assert "ETag" not in response.headers


async def test_read_another_users_item_as_admin_is_200(
    client: httpx.AsyncClient, admin: dict[str, str], create_item: CreateItem
) -> None:
    item = await create_item()

    response = await client.get(f"{ITEMS}/{item['id']}", headers=admin)

    assert response.status_code == 200
    assert response.json() == item


async def test_read_unknown_item_is_404(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    response = await client.get(f"{ITEMS}/{uuid.uuid4()}", headers=alice)

    assert response.status_code == 404
    assert response.json() == {"detail": "Item not found"}


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_malformed_item_id_is_422(
    client: httpx.AsyncClient, alice: dict[str, str], method: str
) -> None:
    body = {"title": "x"} if method in ("PUT", "PATCH") else None

    response = await client.request(method, f"{ITEMS}/not-a-uuid", json=body, headers=alice)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "item_id"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ""),
        ("GET", "/"),
        ("POST", "/"),
        ("GET", "/00000000-0000-0000-0000-000000000001"),
        ("PUT", "/00000000-0000-0000-0000-000000000001"),
        ("PATCH", "/00000000-0000-0000-0000-000000000001"),
        ("DELETE", "/00000000-0000-0000-0000-000000000001"),
    ],
)
async def test_every_route_without_token_is_401(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {"title": "x"} if method in ("POST", "PUT", "PATCH") else None

    response = await client.request(method, f"{ITEMS}{path}", json=body)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["X-Request-ID"]


async def test_read_item_with_refresh_token_is_401(
    client: httpx.AsyncClient, tokens: TokenFactory, create_item: CreateItem
) -> None:
    item = await create_item()
    refresh = tokens.mint(token_type="refresh")

    response = await client.get(
        f"{ITEMS}/{item['id']}", headers={"Authorization": f"Bearer {refresh}"}
    )

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer error="invalid_token", error_description="Not an access token"'
    )


async def test_read_item_with_garbage_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{ITEMS}/", headers={"Authorization": "Bearer not.a.token"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer error="invalid_token", error_description="Malformed token"'
    )
