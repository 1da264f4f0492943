"""Settings of the items service; every field can be set from the environment."""

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    SERVICE_NAME: str = "items"
    DATABASE_URL: str = "postgresql+asyncpg://items:items-dev-only@127.0.0.1:5432/items"


settings = Settings()
