"""The auth service's ASGI app: `uvicorn auth.main:app`."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from auth import revocations, service
from auth.keyring import load_keyring
from auth.routes import router
from auth.settings import settings
from servicekit.app import create_app
from servicekit.auth import StaticKeySource
from servicekit.background import running

keyring = load_keyring(settings)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.keyring = keyring
    restore = partial(
        revocations.keep_restored,
        sessionmaker=app.state.database.sessionmaker,
        redis=app.state.redis,
        interval=settings.REVOCATION_CHECK_INTERVAL,
    )
    if settings.FIRST_ADMIN_EMAIL and settings.FIRST_ADMIN_PASSWORD:
        async with app.state.database.sessionmaker() as session:
            await service.ensure_first_admin(
                session=session,
                email=settings.FIRST_ADMIN_EMAIL,
                password=settings.FIRST_ADMIN_PASSWORD.get_secret_value(),
            )
    async with running(restore):
        yield


app = create_app(
    settings,
    routers=[router],
    title="Auth service",
    description="Accounts, OAuth2 password login, rotating refresh tokens, revocation, JWKS.",
    lifespan=lifespan,
    # The auth service verifies with its own keyring: no HTTP call to itself.
    key_source=StaticKeySource(keyring.public_keys),
    publishes_events=True,
)
