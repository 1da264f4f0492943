"""The auth service's ASGI app: `uvicorn auth.main:app`."""

from servicekit.app import create_app

from auth.routes import router
from auth.settings import settings

app = create_app(
    settings,
    routers=[router],
    title="Auth service",
    description="Accounts, OAuth2 password login, rotating refresh tokens, revocation and the JWKS.",
)
