"""Every rejection the contract lists under Tokens, each a 401 whose `WWW-Authenticate` names
the presented token invalid (RFC 6750 §3.1)."""

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI

from servicekit.auth import issue_token
from servicekit.keys import generate_private_key
from servicekit_testing import bearer

ME = "/api/v1/auth/me"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _signed(app: FastAPI, user: dict, **overrides: Any) -> str:
    keyring = app.state.keyring
    settings = app.state.settings
    arguments: dict[str, Any] = {
        "private_key": keyring.signing_key,
        "kid": keyring.signing_kid,
        "algorithm": settings.AUTH_ALGORITHM,
        "issuer": settings.AUTH_ISSUER,
        "audience": settings.AUTH_AUDIENCE,
        "user_id": uuid.UUID(user["account"]["id"]),
        "session_id": uuid.uuid4(),
        "roles": ["user"],
        "token_type": "access",
        "ttl_seconds": 900,
        "token_id": uuid.uuid4().hex,
    }
    arguments.update(overrides)
    token, _ = issue_token(**arguments)
    return token


async def _assert_rejected(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get(ME, headers=bearer(token))
    assert response.status_code == 401, response.text
    detail = response.json()["detail"]
    assert detail
    assert response.headers["www-authenticate"] == (
        f'Bearer error="invalid_token", error_description="{detail}"'
    )


async def test_a_well_formed_token_is_accepted(
    client: httpx.AsyncClient, app: FastAPI, user: dict
) -> None:
    response = await client.get(ME, headers=bearer(_signed(app, user)))
    assert response.status_code == 200


async def test_missing_token_is_401_with_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get(ME)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_alg_none_is_rejected(client: httpx.AsyncClient, app: FastAPI, user: dict) -> None:
    real = jwt.decode(user["access_token"], options={"verify_signature": False})
    header = {"alg": "none", "typ": "JWT", "kid": app.state.keyring.signing_kid}
    await _assert_rejected(client, f"{_b64(header)}.{_b64(real)}.")


async def test_hs256_signed_with_the_public_key_is_rejected(
    client: httpx.AsyncClient, app: FastAPI, user: dict
) -> None:
    public_pem = app.state.keyring.signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    real = jwt.decode(user["access_token"], options={"verify_signature": False})
    header = {"alg": "HS256", "typ": "JWT", "kid": app.state.keyring.signing_kid}
    signing_input = f"{_b64(header)}.{_b64(real)}".encode()
    signature = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    token = signing_input.decode() + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    await _assert_rejected(client, token)


async def test_tampered_payload_is_rejected(client: httpx.AsyncClient, user: dict) -> None:
    header, payload, signature = user["access_token"].split(".")
    claims = jwt.decode(user["access_token"], options={"verify_signature": False})
    claims["roles"] = ["user", "admin"]
    await _assert_rejected(client, f"{header}.{_b64(claims)}.{signature}")


@pytest.mark.parametrize(
    "overrides",
    [
        {"issuer": "https://evil.example/api/v1/auth"},
        {"audience": "someone-else"},
        {"now": time.time() - 3600},
        {"token_type": "refresh"},
    ],
    ids=["wrong-iss", "wrong-aud", "expired", "refresh-as-access"],
)
async def test_token_with_bad_claims_is_rejected(
    client: httpx.AsyncClient, app: FastAPI, user: dict, overrides: dict
) -> None:
    await _assert_rejected(client, _signed(app, user, **overrides))


async def test_unknown_kid_is_rejected(client: httpx.AsyncClient, app: FastAPI, user: dict) -> None:
    stranger = generate_private_key(app.state.settings.AUTH_ALGORITHM)
    await _assert_rejected(client, _signed(app, user, private_key=stranger, kid="not-ours"))


async def test_right_kid_but_another_key_is_rejected(
    client: httpx.AsyncClient, app: FastAPI, user: dict
) -> None:
    stranger = generate_private_key(app.state.settings.AUTH_ALGORITHM)
    await _assert_rejected(client, _signed(app, user, private_key=stranger))


async def test_token_missing_a_claim_is_rejected(
    client: httpx.AsyncClient, app: FastAPI, user: dict
) -> None:
    claims = jwt.decode(user["access_token"], options={"verify_signature": False})
    del claims["sid"]
    token = jwt.encode(
        claims,
        app.state.keyring.signing_key,
        algorithm=app.state.settings.AUTH_ALGORITHM,
        headers={"kid": app.state.keyring.signing_kid},
    )
    await _assert_rejected(client, token)


async def test_access_token_is_refused_by_refresh(client: httpx.AsyncClient, user: dict) -> None:
    response = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": user["access_token"]}
    )
    assert response.status_code == 401


async def test_revoked_token_is_rejected(client: httpx.AsyncClient, user: dict) -> None:
    logout = await client.post("/api/v1/auth/logout", headers=bearer(user["access_token"]))
    assert logout.status_code == 204
    await _assert_rejected(client, user["access_token"])


async def test_garbage_is_rejected(client: httpx.AsyncClient) -> None:
    await _assert_rejected(client, "not.a.jwt")


async def test_jwks_publishes_public_members_only(client: httpx.AsyncClient, app: FastAPI) -> None:
    response = await client.get("/api/v1/auth/.well-known/jwks.json")
    assert response.status_code == 200
    [key] = response.json()["keys"]
    assert key["kid"] == app.state.keyring.signing_kid
    assert key["alg"] == app.state.settings.AUTH_ALGORITHM
    assert key["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


async def test_tokens_name_the_published_key(client: httpx.AsyncClient, user: dict) -> None:
    jwks = (await client.get("/api/v1/auth/.well-known/jwks.json")).json()
    header = jwt.get_unverified_header(user["access_token"])
    assert header["kid"] in {key["kid"] for key in jwks["keys"]}
    claims = jwt.decode(user["access_token"], options={"verify_signature": False})
    assert set(claims) == {"iss", "aud", "sub", "iat", "exp", "jti", "sid", "type", "roles"}
    assert claims["type"] == "access" and claims["roles"] == ["user"]
    assert claims["exp"] - claims["iat"] == pytest.approx(900, abs=1)
