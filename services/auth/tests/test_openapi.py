"""The auth service's OpenAPI document says what its routes really answer."""

import httpx

ACCEPTED = ("/api/v1/auth/verify-email/resend", "/api/v1/auth/password/forgot")


async def test_accepted_answers_are_documented_without_a_body(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/v1/auth/openapi.json")).json()
    for path in ACCEPTED:
        assert "content" not in schema["paths"][path]["post"]["responses"]["202"], path


async def test_forgot_password_answers_202_with_no_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/password/forgot", json={"email": "who@example.com"})
    assert response.status_code == 202
    assert response.content == b""
    assert "content-type" not in response.headers
