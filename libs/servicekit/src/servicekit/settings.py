"""Settings every service shares; each service subclasses `ServiceSettings`."""

from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Values that are fine on a laptop and must never reach production.
DEVELOPMENT_SECRET_MARKER = "dev-only"


class ServiceSettings(BaseSettings):
    """Environment-driven settings with development defaults that work on this machine."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    ENVIRONMENT: Literal["development", "test", "production"] = "development"
    SERVICE_NAME: str = "service"
    LOG_LEVEL: str = "INFO"
    DATABASE_URL: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    #: Per process: the engine's pool plus overflow, and the read pool (`Database.fetch_*`);
    #: PostgreSQL's max_connections must cover their sum over every service process.
    DATABASE_POOL_SIZE: int = 20
    DATABASE_MAX_OVERFLOW: int = 5
    DATABASE_READ_POOL_SIZE: int = 10
    # Bounded waits (seconds): what a request may wait for before it answers 503 with
    # Retry-After. Each, and pool + lock (the longest a write waits on a hot row), is kept
    # under a client's patience (httpx's default is 5 s) and the gateway's.
    #: For a pooled connection (database and Redis) when every one is in use.
    DATABASE_POOL_TIMEOUT: float = 2.0
    #: For a row lock another transaction holds (PostgreSQL's lock_timeout).
    DATABASE_LOCK_TIMEOUT: float = 2.0
    #: For one statement to finish (PostgreSQL's statement_timeout); 0: no limit.
    DATABASE_STATEMENT_TIMEOUT: float = 5.0
    REDIS_URL: str = "redis://127.0.0.1:6379/0"
    #: Per process: connections to Redis (revocation checks, events); more wait, bounded by
    #: DATABASE_POOL_TIMEOUT. The readiness probe has a connection of its own.
    REDIS_POOL_SIZE: int = 50
    #: Seconds a readiness probe or a Redis call may take before it counts as down.
    DEPENDENCY_TIMEOUT: float = 2.0
    #: Largest request body accepted, in bytes; a larger one is a 413 before it is read whole.
    MAX_BODY_BYTES: int = 1_048_576

    # Tokens, as every service verifies them.
    AUTH_ISSUER: str = "http://localhost:8000/api/v1/auth"
    AUTH_AUDIENCE: str = "platform"
    #: RS256 by default: every request verifies a token and RSA verification is the cheaper
    #: (signing is dearer, but happens only at login and refresh, beside an Argon2 hash).
    AUTH_ALGORITHM: Literal["RS256", "EdDSA"] = "RS256"
    JWKS_URL: str = "http://127.0.0.1:8001/api/v1/auth/.well-known/jwks.json"
    #: Minimum seconds between two JWKS refreshes triggered by an unknown `kid`.
    JWKS_REFRESH_INTERVAL: float = 30.0
    #: Seconds the key set is trusted before it is fetched again in the background.
    JWKS_CACHE_TTL: float = 300.0

    # Events between services (Redis Streams).
    #: Run the outbox relay and the event consumer inside the service process.
    RUN_EVENT_WORKERS: bool = True
    EVENT_STREAM: str = "events"
    #: A message pending this long on a silent consumer is claimed by a live one.
    EVENT_CLAIM_IDLE_MS: int = 30_000
    #: Attempts of a failing handler before the event is parked in the dead-letter stream.
    EVENT_MAX_ATTEMPTS: int = 3
    #: Wake the outbox relay when a transaction with events commits (this process's commits
    #: directly, other replicas' through PostgreSQL NOTIFY); off, it only polls.
    OUTBOX_WAKE_ON_COMMIT: bool = True
    #: Seconds between the relay's looks at the outbox when nothing woke it: the safety net
    #: for a notification missed while its LISTEN connection was down.
    OUTBOX_POLL_INTERVAL: float = 5.0

    # Metrics (servicekit.metrics) and traces (servicekit.tracing; OTEL_* variables).
    #: Port of the Prometheus endpoint, apart from the service's own (which never serves
    #: /metrics); unset, metrics are still counted but not served.
    METRICS_PORT: int | None = None
    #: Address the metrics endpoint binds; in a container, the inner network's side.
    METRICS_HOST: str = "127.0.0.1"
    #: Seconds between samples of the outbox and the stream's consumer groups.
    METRICS_SAMPLE_INTERVAL: float = 5.0

    @property
    def api_prefix(self) -> str:
        return f"/api/v1/{self.SERVICE_NAME}"

    @model_validator(mode="after")
    def _refuse_development_secrets_in_production(self) -> "ServiceSettings":
        if self.ENVIRONMENT == "production":
            for name in type(self).model_fields:
                value = getattr(self, name)
                if isinstance(value, SecretStr):
                    value = value.get_secret_value()
                if isinstance(value, str) and DEVELOPMENT_SECRET_MARKER in value:
                    raise ValueError(
                        f"{name} still holds a development default; set it for production"
                    )
        return self
