"""The gateway: routing by prefix, docs through it, CORS, security headers."""

import httpx
import pytest

SERVICES = ["auth", "users", "items", "notifications"]
ALLOWED_ORIGIN = "http://localhost:3000"


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_health_is_reachable_through_the_gateway(
    api: httpx.Client, service: str
) -> None:
    response = api.get(f"/api/v1/{service}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_ready_through_the_gateway(api: httpx.Client, service: str) -> None:
    response = api.get(f"/api/v1/{service}/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_docs_render_through_the_gateway(api: httpx.Client, service: str) -> None:
    docs = api.get(f"/api/v1/{service}/docs")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.text
    assert f"/api/v1/{service}/openapi.json" in docs.text
    schema = api.get(f"/api/v1/{service}/openapi.json")
    assert schema.status_code == 200
    assert schema.json()["info"]["title"].lower().startswith(service)
    assert api.get(f"/api/v1/{service}/redoc").status_code == 200


def test_swagger_authorize_points_at_the_token_route(api: httpx.Client) -> None:
    schema = api.get("/api/v1/items/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    [scheme] = schemes.values()
    assert scheme["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"


@pytest.mark.parametrize("path", ["/", "/api/v1/nothing/health", "/api/v2/auth/health", "/apix"])
def test_unknown_paths_are_404(api: httpx.Client, path: str) -> None:
    assert api.get(path).status_code == 404


def test_preflight_from_an_allowed_origin_is_answered_per_the_contract(api: httpx.Client) -> None:
    response = api.options(
        "/api/v1/items/",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization,content-type,if-match",
        },
    )
    assert response.status_code in (200, 204)
    headers = response.headers
    assert headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert headers["access-control-allow-credentials"] == "true"
    methods = {m.strip() for m in headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
    allowed = {h.strip().lower() for h in headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "if-match", "x-request-id"} <= allowed
    assert int(headers["access-control-max-age"]) > 0
    assert "origin" in headers["vary"].lower()


def test_preflight_from_a_refused_origin_gets_no_allow_origin(api: httpx.Client) -> None:
    response = api.options(
        "/api/v1/items/",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in response.headers


def test_actual_cors_response_exposes_the_contract_headers(api: httpx.Client) -> None:
    response = api.get("/api/v1/auth/health", headers={"Origin": ALLOWED_ORIGIN})
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"etag", "location", "x-request-id", "retry-after"} <= exposed
    refused = api.get("/api/v1/auth/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize("path", ["/api/v1/auth/health", "/api/v1/auth/me", "/nowhere"])
def test_security_headers_on_every_response(api: httpx.Client, path: str) -> None:
    response = api.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"]


def test_request_id_from_the_client_reaches_the_service_and_comes_back(api: httpx.Client) -> None:
    response = api.get("/api/v1/users/health", headers={"X-Request-ID": "e2e-trace-42"})
    assert response.headers["x-request-id"] == "e2e-trace-42"
