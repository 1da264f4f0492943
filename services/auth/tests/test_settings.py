import pytest
from pydantic import ValidationError

from auth.settings import Settings


def test_production_refuses_development_secrets_even_when_secret() -> None:
    with pytest.raises(ValidationError, match="FIRST_ADMIN_PASSWORD"):
        Settings(
            ENVIRONMENT="production",
            DATABASE_URL="postgresql+asyncpg://auth:real-password@db/auth",
            FIRST_ADMIN_PASSWORD="admin-password-dev-only",
        )


def test_production_accepts_real_secrets() -> None:
    settings = Settings(
        ENVIRONMENT="production",
        DATABASE_URL="postgresql+asyncpg://auth:real-password@db/auth",
        FIRST_ADMIN_PASSWORD="a real admin password",
    )
    assert settings.FIRST_ADMIN_PASSWORD is not None
