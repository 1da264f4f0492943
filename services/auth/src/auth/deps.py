"""Dependencies of the auth service's routes."""

from typing import Annotated

from fastapi import Depends, Request

from auth.keyring import Keyring
from servicekit.auth import TokenVerifier


def get_keyring(request: Request) -> Keyring:
    keyring: Keyring = request.app.state.keyring
    return keyring


def get_verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier = request.app.state.token_verifier
    return verifier


def client_address(request: Request) -> str:
    """The peer as uvicorn resolved it: X-Forwarded-For is trusted only from the gateway."""
    return request.client.host if request.client else "unknown"


KeyringDep = Annotated[Keyring, Depends(get_keyring)]
VerifierDep = Annotated[TokenVerifier, Depends(get_verifier)]
ClientAddress = Annotated[str, Depends(client_address)]
