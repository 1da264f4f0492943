"""Settings of the auth service; every field can be set from the environment."""

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    SERVICE_NAME: str = "auth"
    DATABASE_URL: str = "postgresql+asyncpg://auth:auth-dev-only@127.0.0.1:5432/auth"


settings = Settings()
