"""Every service's OpenAPI documents the answers the platform gives on its behalf."""

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from servicekit.app import create_app
from servicekit.auth import Caller
from servicekit.settings import ServiceSettings


class Note(BaseModel):
    text: str


def _schema() -> dict[str, Any]:
    router = APIRouter()

    @router.post("/notes")
    async def create_note(note: Note, caller: Caller) -> Note:
        return note

    @router.get("/notes/mine", responses={401: {"description": "Log in first"}})
    async def my_notes(caller: Caller) -> list[Note]:
        return []

    @router.post("/public")
    async def public(note: Note) -> Note:
        return note

    settings = ServiceSettings(SERVICE_NAME="demo", ENVIRONMENT="test")
    return create_app(settings, routers=[router], title="Demo").openapi()


def _responses(schema: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return dict(schema["paths"][f"/api/v1/demo{path}"][method]["responses"])


def test_operation_with_a_token_documents_401_as_a_detail_message() -> None:
    schema = _schema()
    unauthorized = _responses(schema, "post", "/notes")["401"]
    ref = unauthorized["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/ErrorMessage"
    assert schema["components"]["schemas"]["ErrorMessage"]["required"] == ["detail"]


def test_operation_with_a_body_documents_400_and_413() -> None:
    for path in ("/notes", "/public"):
        assert {"400", "413", "422"} <= set(_responses(_schema(), "post", path))


def test_public_operation_documents_no_401() -> None:
    assert "401" not in _responses(_schema(), "post", "/public")


def test_answers_a_route_documents_itself_are_kept() -> None:
    responses = _responses(_schema(), "get", "/notes/mine")
    assert responses["401"]["description"] == "Log in first"
    assert "400" not in responses and "413" not in responses


def test_health_documents_only_its_own_answers_and_the_304() -> None:
    assert set(_responses(_schema(), "get", "/health")) == {"200", "304"}


def test_every_get_documents_the_304_its_etag_and_if_none_match() -> None:
    schema = _schema()
    for path in ("/health", "/notes/mine"):
        operation = schema["paths"][f"/api/v1/demo{path}"]["get"]
        assert set(operation["responses"]["304"]["headers"]) == {"ETag", "Cache-Control"}
        assert set(operation["responses"]["200"]["headers"]) == {"ETag", "Cache-Control"}
        assert "If-None-Match" in [parameter["name"] for parameter in operation["parameters"]]


def test_successes_document_cache_control_and_refusals_www_authenticate() -> None:
    responses = _responses(_schema(), "post", "/notes")
    assert "Cache-Control" in responses["200"]["headers"]
    assert "ETag" not in responses["200"]["headers"]
    assert "WWW-Authenticate" in responses["401"]["headers"]
    assert "304" not in responses
