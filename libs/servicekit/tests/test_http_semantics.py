"""HTTP's rules on every route of a service built with `create_app` (RFC 9110/9111, RFC 6750):
conditional GET, HEAD, `Allow`, `Cache-Control` and the bearer challenge."""

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from servicekit import revocation
from servicekit.app import create_app
from servicekit.errors import TooManyRequests, Unauthorized
from servicekit.oauth import TokenEndpointRoute
from servicekit.settings import ServiceSettings
from servicekit_testing import TokenFactory

DEMO = "/api/v1/demo"


@pytest.fixture
async def tokens(demo_app: FastAPI) -> TokenFactory:
    await revocation.mark_restored(demo_app.state.redis)  # other tests restart Redis
    factory: TokenFactory = demo_app.state.tokens
    return factory


# ---- conditional GET ------------------------------------------------------------------------


async def test_get_without_a_version_gets_an_etag_of_its_bytes(client: httpx.AsyncClient) -> None:
    first = await client.get(f"{DEMO}/things")
    second = await client.get(f"{DEMO}/things")
    assert first.status_code == 200
    assert first.headers["etag"].startswith('"') and first.headers["etag"].endswith('"')
    assert first.headers["etag"] == second.headers["etag"]


async def test_if_none_match_with_the_current_etag_is_304_without_body(
    client: httpx.AsyncClient,
) -> None:
    etag = (await client.get(f"{DEMO}/things")).headers["etag"]
    response = await client.get(f"{DEMO}/things", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == "no-store"
    assert "content-type" not in response.headers
    assert response.headers["x-request-id"]


async def test_if_none_match_with_another_etag_is_the_whole_answer(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"{DEMO}/things", headers={"If-None-Match": '"stale", "older"'})
    assert response.status_code == 200
    assert response.json() == [{"name": "lamp", "price": "3.50"}]


async def test_route_etag_is_kept_and_compared_weakly(client: httpx.AsyncClient) -> None:
    plain = await client.get(f"{DEMO}/versioned")
    assert plain.headers["etag"] == '"v7"'
    for candidates in ('"v7"', 'W/"v7"', '"v6", "v7"', "*"):
        response = await client.get(f"{DEMO}/versioned", headers={"If-None-Match": candidates})
        assert response.status_code == 304, candidates
        assert response.headers["etag"] == '"v7"'


async def test_if_none_match_never_turns_an_error_into_304(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{DEMO}/things/x", headers={"If-None-Match": "*"})
    assert response.status_code == 404
    assert "etag" not in response.headers


# ---- HEAD and Allow -------------------------------------------------------------------------


async def test_head_answers_as_get_without_the_body(client: httpx.AsyncClient) -> None:
    get = await client.get(f"{DEMO}/health")
    head = await client.head(f"{DEMO}/health")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["etag"] == get.headers["etag"]


async def test_head_honours_if_none_match(client: httpx.AsyncClient) -> None:
    head = await client.head(f"{DEMO}/versioned", headers={"If-None-Match": '"v7"'})
    assert head.status_code == 304


async def test_405_allows_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    response = await client.put(f"{DEMO}/things")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    assert response.json() == {"detail": "Method Not Allowed"}
    assert response.headers["x-request-id"]


async def test_head_where_no_get_is_405(token_client: httpx.AsyncClient) -> None:
    response = await token_client.head(f"{DEMO}/token")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, OPTIONS"
    assert response.content == b""


async def test_options_without_cors_is_204_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.options(f"{DEMO}/things")
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    assert response.content == b""
    health = await client.options(f"{DEMO}/health")
    assert health.headers["allow"] == "GET, HEAD, OPTIONS"


async def test_options_on_a_path_that_does_not_exist_is_404(client: httpx.AsyncClient) -> None:
    response = await client.options(f"{DEMO}/nowhere/at/all")
    assert response.status_code == 404


async def test_static_assets_allow_get_and_head(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{DEMO}/docs-assets/swagger-ui.css")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"


# ---- Cache-Control --------------------------------------------------------------------------


async def test_per_user_answer_is_private_and_revalidated(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    response = await client.get(f"{DEMO}/whoami", headers=tokens.headers())
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-cache"
    again = await client.get(
        f"{DEMO}/whoami",
        headers={**tokens.headers(), "If-None-Match": response.headers["etag"]},
    )
    # Another token of another user: its own answer, never the first user's validator.
    assert again.status_code == 200
    assert again.headers["etag"] != response.headers["etag"]


@pytest.mark.parametrize(
    ("path", "status"),
    [("/health", 200), ("/things/x", 404), ("/whoami", 401), ("/boom", 500)],
)
async def test_anonymous_answers_and_errors_are_not_stored(
    client: httpx.AsyncClient, path: str, status: int
) -> None:
    response = await client.get(f"{DEMO}{path}")
    assert response.status_code == status
    assert response.headers["cache-control"] == "no-store"


async def test_errors_to_a_token_are_not_stored(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    response = await client.get(f"{DEMO}/things/x", headers=tokens.headers())
    assert response.status_code == 404
    assert response.headers["cache-control"] == "no-store"


async def test_docs_are_public_and_revalidated(client: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc", "/docs-assets/swagger-ui.css"):
        response = await client.get(f"{DEMO}{path}")
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, no-cache", path


# ---- bearer challenges (RFC 6750 §3) --------------------------------------------------------


async def test_missing_token_gets_the_bare_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{DEMO}/whoami")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_invalid_token_is_named_in_the_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{DEMO}/whoami", headers={"Authorization": "Bearer not.a.token"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Malformed token"}
    assert response.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="Malformed token"'
    )


async def test_expired_token_is_an_invalid_token(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    expired = tokens.headers(ttl_seconds=-60)
    response = await client.get(f"{DEMO}/whoami", headers=expired)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


async def test_a_user_at_an_admin_route_gets_insufficient_scope(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    response = await client.get(f"{DEMO}/admin-only", headers=tokens.headers())
    assert response.status_code == 403
    assert response.json() == {"detail": "Administrator role required"}
    assert response.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    admin = tokens.headers(roles=("user", "admin"))
    assert (await client.get(f"{DEMO}/admin-only", headers=admin)).status_code == 200


# ---- a token endpoint (RFC 6749 §5) ---------------------------------------------------------


class Grant(BaseModel):
    grant_type: str
    code: int


def _token_endpoint_app() -> FastAPI:
    router = APIRouter(route_class=TokenEndpointRoute)

    @router.post("/token")
    async def token(grant: Grant) -> dict[str, str]:
        if grant.code == 1:
            raise Unauthorized("Wrong credentials")
        if grant.code == 2:
            raise TooManyRequests(7)
        return {"access_token": "t"}

    settings = ServiceSettings(SERVICE_NAME="demo", ENVIRONMENT="test")
    return create_app(settings, routers=[router], title="Demo")


@pytest.fixture
async def token_client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=_token_endpoint_app())
    return httpx.AsyncClient(transport=transport, base_url="http://demo")


async def test_token_answer_is_never_stored(token_client: httpx.AsyncClient) -> None:
    response = await token_client.post(f"{DEMO}/token", json={"grant_type": "x", "code": 0})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"grant_type": "x", "code": 1}, 401, "invalid_grant"),
        ({"grant_type": "x", "code": 2}, 429, "temporarily_unavailable"),
        ({"grant_type": "x"}, 422, "invalid_request"),
        ({"code": 0}, 422, "unsupported_grant_type"),
    ],
)
async def test_token_errors_carry_the_oauth_code_beside_detail(
    token_client: httpx.AsyncClient, body: dict[str, object], status: int, error: str
) -> None:
    response = await token_client.post(f"{DEMO}/token", json=body)
    assert response.status_code == status
    answer = response.json()
    assert answer["error"] == error
    assert answer["detail"]
    assert isinstance(answer["error_description"], str)
    assert response.headers["cache-control"] == "no-store"
