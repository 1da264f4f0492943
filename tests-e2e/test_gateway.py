"""The gateway: routing, docs through it, CORS, security headers, request ids, rate limit."""

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from e2e import PASSWORD, SERVICES, Mailbox, bearer, gateway_client

ALLOWED_ORIGIN = "http://localhost:3000"
REFUSED_ORIGIN = "http://evil.example"


# ---- routing and docs ---------------------------------------------------------------------


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
    response = api.get(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


# ---- CORS ---------------------------------------------------------------------------------


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
        headers={"Origin": REFUSED_ORIGIN, "Access-Control-Request-Method": "GET"},
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
    refused = api.get("/api/v1/auth/health", headers={"Origin": REFUSED_ORIGIN})
    assert "access-control-allow-origin" not in refused.headers


# ---- headers on every response ------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/auth/health", "/api/v1/auth/me", "/api/v1/items/not-a-uuid", "/nowhere"]
)
def test_security_headers_and_a_request_id_on_every_response(api: httpx.Client, path: str) -> None:
    response = api.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"]
    assert response.headers["x-request-id"]


def test_request_id_from_the_client_reaches_the_service_and_comes_back(api: httpx.Client) -> None:
    request_id = f"e2e-{uuid.uuid4().hex}"
    response = api.get("/api/v1/users/me", headers={"X-Request-ID": request_id})
    assert response.status_code == 401  # answered by the users service itself, not the gateway
    assert response.headers["x-request-id"] == request_id


def test_the_request_id_of_a_registration_follows_its_event_into_the_mail(
    api: httpx.Client, mailbox: Mailbox, fresh_email: str
) -> None:
    request_id = f"e2e-{uuid.uuid4().hex}"
    registered = api.post(
        "/api/v1/auth/register",
        json={"email": fresh_email, "password": PASSWORD},
        headers={"X-Request-ID": request_id},
    )
    assert registered.status_code == 201
    assert registered.headers["x-request-id"] == request_id
    # auth's outbox -> Redis -> the notifications consumer -> the mail it sends.
    [mail] = mailbox.wait_for(fresh_email, "Confirm")
    assert mailbox.headers(mail)["x-request-id"] == [request_id]


# ---- rate limit on the credential routes --------------------------------------------------


def test_token_route_answers_429_with_retry_after_once_the_burst_is_spent(
    api: httpx.Client,
    client_address: str | None,
    new_client_address: Callable[[], str | None],
    fresh_email: str,
    gateway_url: str,
) -> None:
    # This test spends its client address's quota: it needs an address of its own, or it
    # would stall the logins of every test beside it. Where is it seen from?
    api.post("/api/v1/auth/register", json={"email": fresh_email, "password": PASSWORD})
    login = api.post("/api/v1/auth/token", data={"username": fresh_email, "password": PASSWORD})
    sessions = api.get("/api/v1/auth/sessions", headers=bearer(login.json()["access_token"]))
    seen_at = sessions.json()["items"][0]["ip"]
    if client_address is None or seen_at != client_address:
        pytest.skip(f"no client address of our own: the gateway sees this test at {seen_at}")

    # An empty form is a 422 from the auth service: no password hashing, no failed login
    # counted, only the gateway's limiter at work. The Origin shows a browser could read it.
    cors = {"Origin": ALLOWED_ORIGIN}
    statuses = []
    for _ in range(500):
        response = api.post("/api/v1/auth/token", data={}, headers=cors)
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[-1] == 429, f"no 429 after {len(statuses)} requests"
    assert set(statuses[:-1]) == {422}
    # The gateway's own answer, as a service's: JSON, Retry-After, every header.
    assert "detail" in response.json()
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "retry-after" in response.headers["access-control-expose-headers"].lower()

    # Claiming to be someone else buys no fresh quota: sent at once, each with another claimed
    # address, only what the refill allows (a token per 100 ms by default) gets through.
    claims = [
        {header: f"{prefix}203.0.113.{n}"}
        for n in range(1, 8)
        for header, prefix in [("X-Forwarded-For", ""), ("X-Real-IP", ""), ("Forwarded", "for=")]
    ]
    spoofed = all_at_once(api, "/api/v1/auth/token", claims)
    assert spoofed.count(429) >= len(claims) - 3, spoofed
    # Another address keeps its own quota.
    with gateway_client(gateway_url, new_client_address()) as elsewhere:
        assert elsewhere.post("/api/v1/auth/token", data={}).status_code == 422


def all_at_once(client: httpx.Client, path: str, headers: list[dict[str, str]]) -> list[int]:
    """POST an empty form once per entry of `headers`, all together, each on its connection."""
    with ThreadPoolExecutor(max_workers=len(headers)) as pool:
        responses = pool.map(lambda h: client.post(path, headers=h), headers)
        return [response.status_code for response in responses]


def test_the_auth_services_own_login_throttle_passes_the_gateway_unchanged(
    api: httpx.Client, fresh_email: str
) -> None:
    account = {"email": fresh_email, "password": PASSWORD}
    assert api.post("/api/v1/auth/register", json=account).status_code == 201
    wrong = {"username": fresh_email, "password": "not the password"}
    for _ in range(5):  # LOGIN_MAX_FAILURES_PER_ACCOUNT
        assert api.post("/api/v1/auth/token", data=wrong).status_code == 401
    throttled = api.post("/api/v1/auth/token", data=wrong, headers={"Origin": ALLOWED_ORIGIN})
    assert throttled.status_code == 429
    # Not the gateway's page: the service's detail (with its OAuth error code) and the
    # lockout's remaining seconds.
    assert throttled.json() == {
        "detail": "Too many failed logins; try again later",
        "error": "temporarily_unavailable",
        "error_description": "Too many failed logins; try again later",
    }
    assert int(throttled.headers["retry-after"]) > 60
    assert throttled.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert throttled.headers["x-request-id"]
