"""Settings of the users service; every field can be set from the environment."""

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    SERVICE_NAME: str = "users"
    DATABASE_URL: str = "postgresql+asyncpg://users:users-dev-only@127.0.0.1:5432/users"


settings = Settings()
