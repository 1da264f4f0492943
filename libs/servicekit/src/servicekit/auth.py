"""Our access and refresh tokens: their claims (`issue_token`, which the auth service mints
with), their stateless verification (`TokenVerifier`, its key sources), and the dependencies
built on it (`Caller`, `AdminCaller`).

A resource service never calls the auth service per request: it verifies the
signature with public keys fetched once from the JWKS endpoint (refreshed, at
most once per interval, when a token names a key it does not know), checks the
claims, then asks Redis in one round trip whether the token was revoked.
"""

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol
from uuid import UUID

import httpx
import jwt
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from servicekit import metrics, revocation
from servicekit.errors import DependencyUnavailable, Forbidden, Unauthorized
from servicekit.settings import ServiceSettings

logger = logging.getLogger(__name__)

TokenType = Literal["access", "refresh"]
TOKEN_TYPES = ("access", "refresh")
REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "exp", "jti", "sid", "type", "roles"]

#: The Swagger "Authorize" button posts the password form here, through the gateway.
TOKEN_URL = "/api/v1/auth/token"


class InvalidToken(Exception):
    """Any reason to refuse a token; the message is safe to show."""


class KeySource(Protocol):
    async def key_for(self, kid: str) -> Any | None:
        """The public key named `kid`, or None when it is unknown even after a refresh."""
        ...


class StaticKeySource:
    """Keys known in-process: the auth service's own keyring, or a test key."""

    def __init__(self, keys: Mapping[str, Any]) -> None:
        self.keys = dict(keys)

    async def key_for(self, kid: str) -> Any | None:
        return self.keys.get(kid)


class JwksKeySource:
    """Public keys from the auth service's JWKS, cached, refreshed on demand but rate-limited."""

    def __init__(self, url: str, *, algorithm: str, refresh_interval: float, ttl: float) -> None:
        self.url, self.algorithm = url, algorithm
        self.refresh_interval, self.ttl = refresh_interval, ttl
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str) -> Any | None:
        stale = self._fetched_at is None or time.monotonic() - self._fetched_at > self.ttl
        if kid not in self._keys or stale:
            await self._refresh()
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._fetched_at is not None and now - self._fetched_at < self.refresh_interval:
                return  # someone refreshed a moment ago; an unknown kid stays unknown
            try:
                async with httpx.AsyncClient(timeout=3.0) as client:
                    response = await client.get(self.url)
                    response.raise_for_status()
                keys = response.json()["keys"]
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                if not self._keys:
                    raise DependencyUnavailable("Signing keys cannot be fetched") from exc
                logger.warning("jwks refresh failed; keeping cached keys", extra={"err": str(exc)})
                self._fetched_at = now
                return
            self._keys = {
                jwk["kid"]: jwt.PyJWK(jwk, algorithm=self.algorithm).key
                for jwk in keys
                if jwk.get("kid") and jwk.get("alg", self.algorithm) == self.algorithm
            }
            self._fetched_at = now


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as the token says: no database lookup needed."""

    user_id: UUID
    session_id: UUID
    token_id: str
    roles: frozenset[str]
    issued_at: float
    expires_at: float

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


class TokenVerifier:
    """Signature and claims (sync, pure CPU) then revocation (one Redis round trip)."""

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        algorithm: str,
        cache_size: int = 10_000,
    ) -> None:
        self.keys, self.issuer, self.audience, self.algorithm = keys, issuer, audience, algorithm
        # A client sends the same token many times; its signature need not be checked again.
        # Keyed by the whole token, so a cached entry can only ever match identical bytes.
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._cache_size = cache_size

    async def decode(self, token: str, *, expected_type: TokenType) -> dict[str, Any]:
        claims = self._verified.get(token)
        if claims is None:
            claims = await self._decode_and_verify(token)
            self._remember(token, claims)
        elif claims["exp"] <= time.time():
            raise InvalidToken("Token expired")
        if claims["type"] != expected_type:
            article = "an" if expected_type == "access" else "a"
            raise InvalidToken(f"Not {article} {expected_type} token")
        return claims

    def _remember(self, token: str, claims: dict[str, Any]) -> None:
        if self._cache_size <= 0:
            return
        self._verified[token] = claims
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)

    async def _decode_and_verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise InvalidToken("Malformed token") from exc
        # Pin the algorithm before touching the key: defeats `none` and HS256-with-public-key.
        if header.get("alg") != self.algorithm:
            raise InvalidToken("Token algorithm not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("Token names no key")
        key = await self.keys.key_for(kid)
        if key is None:
            raise InvalidToken("Token signed with an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("Token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidToken("Invalid token") from exc
        if not isinstance(claims["exp"], int | float) or claims["type"] not in TOKEN_TYPES:
            raise InvalidToken("Invalid token claims")
        return claims

    async def verify(
        self, token: str, revocations: revocation.RevocationChecks, *, expected_type: TokenType
    ) -> Principal:
        try:
            principal = principal_from_claims(await self.decode(token, expected_type=expected_type))
        except InvalidToken:
            metrics.TOKEN_VERIFICATIONS.labels("invalid").inc()
            raise
        try:
            revoked = await revocations.is_revoked(
                user_id=principal.user_id,
                session_id=principal.session_id,
                token_id=principal.token_id,
                issued_at=principal.issued_at,
            )
        except revocation.RevocationUnavailable as exc:
            metrics.revocation_check_failed()
            raise DependencyUnavailable("Token revocation cannot be checked") from exc
        except revocation.RevocationStateLost as exc:
            metrics.revocation_check_failed()
            raise DependencyUnavailable("Token revocations are being restored") from exc
        metrics.TOKEN_VERIFICATIONS.labels("revoked" if revoked else "valid").inc()
        if revoked:
            raise InvalidToken("Token revoked")
        return principal


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    try:
        roles = claims["roles"]
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise ValueError("roles must be a list of strings")
        return Principal(
            user_id=UUID(claims["sub"]),
            session_id=UUID(claims["sid"]),
            token_id=str(claims["jti"]),
            roles=frozenset(roles),
            issued_at=float(claims["iat"]),
            expires_at=float(claims["exp"]),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidToken("Invalid token claims") from exc


def build_verifier(settings: ServiceSettings, keys: KeySource | None = None) -> TokenVerifier:
    if keys is None:
        keys = JwksKeySource(
            settings.JWKS_URL,
            algorithm=settings.AUTH_ALGORITHM,
            refresh_interval=settings.JWKS_REFRESH_INTERVAL,
            ttl=settings.JWKS_CACHE_TTL,
        )
    return TokenVerifier(
        keys,
        issuer=settings.AUTH_ISSUER,
        audience=settings.AUTH_AUDIENCE,
        algorithm=settings.AUTH_ALGORITHM,
    )


async def authenticate(token: str | None, connection: HTTPConnection) -> Principal:
    """Shared by the HTTP dependency and the WebSocket handshake."""
    if not token:
        raise Unauthorized()
    verifier: TokenVerifier = connection.app.state.token_verifier
    try:
        return await verifier.verify(
            token, connection.app.state.revocations, expected_type="access"
        )
    except InvalidToken as exc:
        raise Unauthorized(str(exc)) from exc


class BearerAuthentication(OAuth2PasswordBearer):
    """The bearer scheme (OpenAPI's `security`, Swagger's "Authorize") and the token check in
    one dependency: FastAPI resolves every dependency of every request anew, so the scheme as
    a dependency of its own cost a second resolution on each authenticated request."""

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        return await authenticate(await super().__call__(request), request)


#: The caller's verified, unrevoked access token. Named as `bearer_scheme` was in OpenAPI.
require_token = BearerAuthentication(
    tokenUrl=TOKEN_URL, auto_error=False, scheme_name="OAuth2PasswordBearer"
)


async def require_admin(caller: Annotated[Principal, Depends(require_token)]) -> Principal:
    if not caller.is_admin:
        raise Forbidden("Administrator role required")
    return caller


Caller = Annotated[Principal, Depends(require_token)]
AdminCaller = Annotated[Principal, Depends(require_admin)]


def issue_token(
    *,
    private_key: Any,
    kid: str,
    algorithm: str,
    issuer: str,
    audience: str,
    user_id: UUID,
    session_id: UUID,
    roles: list[str],
    token_type: TokenType,
    ttl_seconds: int,
    token_id: str,
    now: float | None = None,
) -> tuple[str, dict[str, Any]]:
    """The one definition of our token's claims, used by the auth service (and test helpers).

    `iat` keeps sub-second precision (a JWT NumericDate may be fractional) so a
    "not valid before" set by logout-all never rejects a token issued after it.
    """
    issued_at = time.time() if now is None else now
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": str(user_id),
        "iat": round(issued_at, 6),
        "exp": int(issued_at + ttl_seconds),
        "jti": token_id,
        "sid": str(session_id),
        "type": token_type,
        "roles": roles,
    }
    token = jwt.encode(claims, private_key, algorithm=algorithm, headers={"kid": kid})
    return token, claims
