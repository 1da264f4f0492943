"""Real signed tokens for tests, minted with a throwaway key exactly as the auth service would."""

import uuid
from typing import Any

from servicekit.auth import StaticKeySource, TokenType, issue_token
from servicekit.keys import generate_private_key, public_jwk
from servicekit.settings import ServiceSettings

#: A password that satisfies every service's rules; tests use it unless they test passwords.
TEST_PASSWORD = "correct horse battery"

Headers = dict[str, str]


def bearer(token: str) -> Headers:
    return {"Authorization": f"Bearer {token}"}


class TokenFactory:
    """Mints tokens for the issuer and audience in `settings`, signed with its own key."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.private_key = generate_private_key(settings.AUTH_ALGORITHM)
        self.kid = public_jwk(self.private_key.public_key())["kid"]

    @property
    def key_source(self) -> StaticKeySource:
        """What a verifier needs to accept this factory's tokens, in place of a JWKS."""
        return StaticKeySource({self.kid: self.private_key.public_key()})

    def mint(
        self,
        user_id: uuid.UUID | None = None,
        *,
        roles: tuple[str, ...] = ("user",),
        token_type: TokenType = "access",
        ttl_seconds: int = 900,
        session_id: uuid.UUID | None = None,
    ) -> str:
        token, _ = issue_token(
            private_key=self.private_key,
            kid=self.kid,
            algorithm=self.settings.AUTH_ALGORITHM,
            issuer=self.settings.AUTH_ISSUER,
            audience=self.settings.AUTH_AUDIENCE,
            user_id=user_id or uuid.uuid4(),
            session_id=session_id or uuid.uuid4(),
            roles=list(roles),
            token_type=token_type,
            ttl_seconds=ttl_seconds,
            token_id=uuid.uuid4().hex,
        )
        return token

    def headers(self, user_id: uuid.UUID | None = None, **claims: Any) -> Headers:
        """The Authorization header of a token `mint(user_id, **claims)` would return."""
        return bearer(self.mint(user_id, **claims))
