"""Strings PostgreSQL cannot store are refused as FastAPI's 422 list, naming the field."""

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from auth.main import app as auth_app
from servicekit_testing import TEST_PASSWORD as PASSWORD
from servicekit_testing import bearer

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def _is_string(schema: dict[str, Any]) -> bool:
    options = schema.get("anyOf", [schema])
    return any(option.get("type") == "string" and "enum" not in option for option in options)


def string_inputs(app: FastAPI) -> Iterator[tuple[str, str, str, str]]:
    """(method, path, where, name) for each string form field, JSON field and query parameter."""
    schema = app.openapi()
    components = schema.get("components", {}).get("schemas", {})
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and _is_string(parameter["schema"]):
                    yield method.upper(), path, "query", parameter["name"]
            for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
                body = content["schema"]
                if "$ref" in body:
                    body = components[body["$ref"].rsplit("/", 1)[-1]]
                for name, field in body.get("properties", {}).items():
                    if _is_string(field):
                        yield method.upper(), path, media_type, name


STRING_INPUTS = list(string_inputs(auth_app))


def test_every_form_and_json_string_field_is_probed() -> None:
    probed = {(path, where, name) for _, path, where, name in STRING_INPUTS}
    assert ("/api/v1/auth/token", FORM, "username") in probed
    assert ("/api/v1/auth/token", FORM, "password") in probed
    assert ("/api/v1/auth/register", JSON, "full_name") in probed
    assert ("/api/v1/auth/accounts", "query", "q") in probed


@pytest.mark.parametrize(
    ("method", "path", "where", "name"), STRING_INPUTS, ids=lambda value: str(value)
)
async def test_nul_byte_in_string_input_is_422_naming_the_field(
    client: httpx.AsyncClient, admin: dict[str, Any], method: str, path: str, where: str, name: str
) -> None:
    url = path.replace("{account_id}", str(uuid.uuid4())).replace("{sid}", str(uuid.uuid4()))
    poison = "a\x00b"
    request: dict[str, Any] = {"headers": bearer(admin["access_token"])}
    if where == "query":
        request["params"] = {name: poison}
    elif where == FORM:
        request["data"] = {name: poison}
    else:
        request["json"] = {name: poison}
    response = await client.request(method, url, **request)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert isinstance(errors, list)
    assert all({"loc", "msg", "type"} <= error.keys() for error in errors)
    location = ["query" if where == "query" else "body", name]
    assert location in [error["loc"] for error in errors], errors


async def test_login_with_nul_in_username_names_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/token", data={"username": "a\x00@example.com", "password": PASSWORD}
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "username"]
    assert error["msg"] == "Value error, must not contain NUL characters"


async def test_login_form_still_takes_the_oauth2_fields(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    response = await client.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "password",
            "username": "root@example.com",
            "password": PASSWORD,
            "scope": "",
            "client_id": "swagger",
        },
    )
    assert response.status_code == 200, response.text
    wrong_grant = await client.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials", "username": "x", "password": "y"},
    )
    assert wrong_grant.status_code == 422
    assert wrong_grant.json()["detail"][0]["loc"] == ["body", "grant_type"]
