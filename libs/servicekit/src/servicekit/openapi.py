"""The answers the platform gives on every service's behalf, added to its OpenAPI document.

A route documents its own outcomes (404, 409, 412...). These come from shared code instead,
so they are documented once here and never forgotten on a new route: a token refused by
`require_token` (401), a body that cannot be parsed at all (400: not UTF-8, nested too
deeply; FastAPI answers these before validation) or that is over `MAX_BODY_BYTES` (413).
The headers of HTTP's read and cache rules (`servicekit.caching`) are documented here too:
`Cache-Control` on every success, `ETag` and the 304 on every GET, `WWW-Authenticate`.
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
        for method, operation in path_item.items():
            responses = operation.setdefault("responses", {})
            extra = {
                **(_WITH_SECURITY if operation.get("security") else {}),
                **(_WITH_BODY if "requestBody" in operation else {}),
            }
            for status, description in extra.items():
                responses.setdefault(status, _error(description))
            _document_http_headers(method, operation)
    schema.setdefault("components", {}).setdefault("schemas", {})[ERROR_SCHEMA] = {
        "title": ERROR_SCHEMA,
        "type": "object",
        "properties": {"detail": {"title": "Detail", "type": "string"}},
        "required": ["detail"],
    }
    return schema


_CACHE_CONTROL = {
    "description": "`private, no-cache` for data of the token's user; `no-store` for tokens,"
    " errors and what no token asked for; public only for documents that depend on no one",
    "schema": {"type": "string"},
}
_ETAG = {
    "description": "A strong validator of this representation, for `If-None-Match`",
    "schema": {"type": "string"},
}
_WWW_AUTHENTICATE = {
    "description": '`Bearer` without a token; `Bearer error="invalid_token"` (401) or'
    ' `Bearer error="insufficient_scope"` (403) when one was presented (RFC 6750)',
    "schema": {"type": "string"},
}
_IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "ETags already held (or `*`): if one is current, the answer is a 304",
    "schema": {"type": "string"},
}
_NOT_MODIFIED = {
    "description": "Not modified: `If-None-Match` names the current `ETag`; no body."
    " HEAD answers as GET does, without the body",
    "headers": {"ETag": _ETAG, "Cache-Control": _CACHE_CONTROL},
}


def _document_http_headers(method: str, operation: dict[str, Any]) -> None:
    """The headers every answer carries, and a GET's conditional form (in place)."""
    responses = operation["responses"]
    for status, response in responses.items():
        headers = response.setdefault("headers", {})
        if status.startswith("2"):
            headers.setdefault("Cache-Control", _CACHE_CONTROL)
            if method == "get":
                headers.setdefault("ETag", _ETAG)
        elif status in ("401", "403"):
            headers.setdefault("WWW-Authenticate", _WWW_AUTHENTICATE)
    if method == "get":
        responses.setdefault("304", _NOT_MODIFIED)
        parameters = operation.setdefault("parameters", [])
        if all(parameter.get("name") != "If-None-Match" for parameter in parameters):
            parameters.append(_IF_NONE_MATCH)


def install_platform_responses(app: FastAPI) -> None:
    """Build the app's OpenAPI document once, with `add_platform_responses` applied."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_platform_responses(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
