"""Minting access/refresh pairs and the one-time tokens that travel by mail."""

import hashlib
import secrets
import uuid

from auth.keyring import Keyring
from auth.models import Account, TokenPair
from auth.settings import settings
from servicekit.auth import issue_token


def sha256(value: str) -> str:
    """Tokens are stored only as hashes: a database leak must not hand out sessions."""
    return hashlib.sha256(value.encode()).hexdigest()


def new_one_time_token() -> str:
    return secrets.token_urlsafe(32)


def mint_pair(keyring: Keyring, account: Account, session_id: uuid.UUID) -> TokenPair:
    common = {
        "private_key": keyring.signing_key,
        "kid": keyring.signing_kid,
        "algorithm": settings.AUTH_ALGORITHM,
        "issuer": settings.AUTH_ISSUER,
        "audience": settings.AUTH_AUDIENCE,
        "user_id": account.id,
        "session_id": session_id,
        "roles": list(account.roles),
    }
    access, _ = issue_token(
        **common,  # type: ignore[arg-type]
        token_type="access",
        ttl_seconds=settings.ACCESS_TOKEN_TTL,
        token_id=uuid.uuid4().hex,
    )
    refresh, _ = issue_token(
        **common,  # type: ignore[arg-type]
        token_type="refresh",
        ttl_seconds=settings.REFRESH_TOKEN_TTL,
        token_id=uuid.uuid4().hex,
    )
    return TokenPair(
        access_token=access, refresh_token=refresh, expires_in=settings.ACCESS_TOKEN_TTL
    )
