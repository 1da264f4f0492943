"""The answers the platform gives on every service's behalf, added to its OpenAPI document.

A route documents its own outcomes (404, 409, 412...). These come from shared code instead,
so they are documented once here and never forgotten on a new route: a token refused by
`require_token` (401), a body that cannot be parsed at all (400: not UTF-8, nested too
deeply; FastAPI answers these before validation) or that is over `MAX_BODY_BYTES` (413).
"""

from typing import Any

from fastapi import FastAPI

ERROR_SCHEMA = "ErrorMessage"

_WITH_SECURITY = {"401": "Missing, malformed, expired or revoked access token"}
_WITH_BODY = {
    "400": "The body cannot be parsed (not UTF-8, or nested too deeply)",
    "413": "The body is larger than the service accepts",
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}
        },
    }


def add_platform_responses(schema: dict[str, Any]) -> dict[str, Any]:
    """Document the shared answers on every operation that can get them (in place)."""
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            extra = {
                **(_WITH_SECURITY if operation.get("security") else {}),
                **(_WITH_BODY if "requestBody" in operation else {}),
            }
            for status, description in extra.items():
                responses.setdefault(status, _error(description))
    schema.setdefault("components", {}).setdefault("schemas", {})[ERROR_SCHEMA] = {
        "title": ERROR_SCHEMA,
        "type": "object",
        "properties": {"detail": {"title": "Detail", "type": "string"}},
        "required": ["detail"],
    }
    return schema


def install_platform_responses(app: FastAPI) -> None:
    """Build the app's OpenAPI document once, with `add_platform_responses` applied."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_platform_responses(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
