"""Dependencies of the auth service's routes: the keyring, the token verifier, the revocation
checks, and the client's address."""

from typing import Annotated

from fastapi import Depends, Request

from auth.keyring import Keyring
from servicekit.auth import TokenVerifier
from servicekit.revocation import RevocationChecks


async def get_keyring(request: Request) -> Keyring:
    keyring: Keyring = request.app.state.keyring
    return keyring


async def get_verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier = request.app.state.token_verifier
    return verifier


async def client_address(request: Request) -> str:
    """The peer as uvicorn resolved it: X-Forwarded-For is trusted only from the gateway."""
    return request.client.host if request.client else "unknown"


async def get_revocations(request: Request) -> RevocationChecks:
    revocations: RevocationChecks = request.app.state.revocations
    return revocations


KeyringDep = Annotated[Keyring, Depends(get_keyring)]
VerifierDep = Annotated[TokenVerifier, Depends(get_verifier)]
RevocationsDep = Annotated[RevocationChecks, Depends(get_revocations)]
ClientAddress = Annotated[str, Depends(client_address)]
