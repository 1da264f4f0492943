import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from servicekit_testing import TEST_PASSWORD as PASSWORD

URL = "/api/v1/auth/register"


async def test_register_returns_account_without_secrets(
    client: httpx.AsyncClient, outbox: Callable[[str], Awaitable[list[dict[str, Any]]]]
) -> None:
    response = await client.post(
        URL, json={"email": "Ada@Example.COM", "password": PASSWORD, "full_name": "Ada"}
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id", "email", "full_name", "is_verified", "is_active", "roles", "created_at"
    }  # fmt: skip
    assert body["email"] == "ada@example.com"
    assert body["roles"] == ["user"]
    assert body["is_verified"] is False and body["is_active"] is True
    assert PASSWORD not in response.text and "argon2" not in response.text
    assert body["created_at"].endswith("Z") or "+00:00" in body["created_at"]
    [event] = await outbox("user.registered")
    assert event["user_id"] == body["id"]
    assert event["email"] == "ada@example.com"
    assert event["full_name"] == "Ada"
    assert len(event["verification_token"]) >= 32


async def test_register_same_email_in_other_case_is_409(client: httpx.AsyncClient) -> None:
    first = await client.post(URL, json={"email": "bob@example.com", "password": PASSWORD})
    assert first.status_code == 201
    again = await client.post(URL, json={"email": "BOB@example.com", "password": PASSWORD})
    assert again.status_code == 409
    assert again.json() == {"detail": "An account with this email already exists"}


async def test_concurrent_registrations_of_one_email_exactly_one_wins(
    client: httpx.AsyncClient,
) -> None:
    import asyncio

    answers = await asyncio.gather(
        *(client.post(URL, json={"email": "race@example.com", "password": PASSWORD})
          for _ in range(5))
    )  # fmt: skip
    assert sorted(answer.status_code for answer in answers) == [201, 409, 409, 409, 409]


@pytest.mark.parametrize(
    "body",
    [
        {"email": "a@example.com", "password": "short"},
        {"email": "a@example.com", "password": "x" * 129},
        {"email": "not-an-email", "password": PASSWORD},
        {"password": PASSWORD},
        {"email": "a@example.com", "password": "\ud800" * 10},
        {"email": "a@example.com", "password": PASSWORD, "full_name": "x\u0000y"},
    ],
)
async def test_register_with_bad_input_is_422(client: httpx.AsyncClient, body: dict) -> None:
    # json.dumps escapes a lone surrogate as `\ud800`, as a hostile client would send it.
    response = await client.post(
        URL, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"]
