"""Settings of the notifications service; every field can be set from the environment."""

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    SERVICE_NAME: str = "notifications"
    DATABASE_URL: str = "postgresql+asyncpg://notifications:notifications-dev-only@127.0.0.1:5432/notifications"


settings = Settings()
