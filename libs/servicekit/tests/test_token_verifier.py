"""The verifier resource services use: JWKS fetched over HTTP, cached, refreshed sparingly."""

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from servicekit.auth import InvalidToken, JwksKeySource, TokenVerifier, issue_token
from servicekit.errors import DependencyUnavailable
from servicekit.keys import generate_private_key, public_jwk

ISSUER, AUDIENCE, ALGORITHM = "https://issuer.test", "platform", "RS256"


class JwksServer:
    """A real HTTP server publishing whichever keys the test puts in `keys`."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.requests = 0

        async def jwks(_: Request) -> JSONResponse:
            self.requests += 1
            return JSONResponse({"keys": self.keys})

        app = Starlette(routes=[Route("/jwks.json", jwks)])
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks.json"

    def __enter__(self) -> "JwksServer":
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    with JwksServer() as server:
        yield server


def _key() -> tuple[Any, str, dict[str, Any]]:
    private = generate_private_key(ALGORITHM)
    jwk = public_jwk(private.public_key())
    return private, jwk["kid"], jwk


def _token(private: Any, kid: str) -> str:
    return issue_token(
        private_key=private, kid=kid, algorithm=ALGORITHM, issuer=ISSUER, audience=AUDIENCE,
        user_id=uuid.uuid4(), session_id=uuid.uuid4(), roles=["user"], token_type="access",
        ttl_seconds=60, token_id=uuid.uuid4().hex,
    )[0]  # fmt: skip


def _verifier(url: str, refresh_interval: float = 30.0) -> TokenVerifier:
    keys = JwksKeySource(url, algorithm=ALGORITHM, refresh_interval=refresh_interval, ttl=300)
    return TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE, algorithm=ALGORITHM)


async def test_keys_are_fetched_once_and_reused(jwks_server: JwksServer) -> None:
    private, kid, jwk = _key()
    jwks_server.keys = [jwk]
    verifier = _verifier(jwks_server.url)
    for _ in range(5):
        claims = await verifier.decode(_token(private, kid), expected_type="access")
        assert claims["iss"] == ISSUER
    assert jwks_server.requests == 1


async def test_a_rotated_key_is_picked_up_by_one_refresh(jwks_server: JwksServer) -> None:
    old_private, old_kid, old_jwk = _key()
    jwks_server.keys = [old_jwk]
    verifier = _verifier(jwks_server.url, refresh_interval=0.0)
    await verifier.decode(_token(old_private, old_kid), expected_type="access")
    new_private, new_kid, new_jwk = _key()
    jwks_server.keys = [new_jwk, old_jwk]
    await verifier.decode(_token(new_private, new_kid), expected_type="access")
    await verifier.decode(_token(old_private, old_kid), expected_type="access")
    assert jwks_server.requests == 2


async def test_unknown_kids_trigger_at_most_one_refresh_per_interval(
    jwks_server: JwksServer,
) -> None:
    private, kid, jwk = _key()
    jwks_server.keys = [jwk]
    verifier = _verifier(jwks_server.url, refresh_interval=30.0)
    await verifier.decode(_token(private, kid), expected_type="access")
    stranger, _, _ = _key()
    attempts = [
        verifier.decode(_token(stranger, f"unknown-{n}"), expected_type="access") for n in range(20)
    ]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    assert all(isinstance(result, InvalidToken) for result in results)
    assert jwks_server.requests == 1  # the first fetch; the flood caused none within 30 s


async def test_unreachable_jwks_without_cached_keys_is_503(jwks_server: JwksServer) -> None:
    private, kid, _ = _key()
    verifier = _verifier("http://127.0.0.1:9/jwks.json")
    with pytest.raises(DependencyUnavailable):
        await verifier.decode(_token(private, kid), expected_type="access")


async def test_a_cached_token_still_expires(jwks_server: JwksServer) -> None:
    private, kid, jwk = _key()
    jwks_server.keys = [jwk]
    verifier = _verifier(jwks_server.url)
    token = issue_token(
        private_key=private, kid=kid, algorithm=ALGORITHM, issuer=ISSUER, audience=AUDIENCE,
        user_id=uuid.uuid4(), session_id=uuid.uuid4(), roles=["user"], token_type="access",
        ttl_seconds=2, token_id="t",
    )[0]  # fmt: skip
    await verifier.decode(token, expected_type="access")  # `exp` is 1 to 2 s away
    await asyncio.sleep(2.1)
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.decode(token, expected_type="access")


async def test_cached_token_of_the_wrong_type_is_refused(jwks_server: JwksServer) -> None:
    private, kid, jwk = _key()
    jwks_server.keys = [jwk]
    verifier = _verifier(jwks_server.url)
    token = _token(private, kid)
    await verifier.decode(token, expected_type="access")
    with pytest.raises(InvalidToken, match="refresh"):
        await verifier.decode(token, expected_type="refresh")
