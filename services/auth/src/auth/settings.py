"""Settings of the auth service; every field can be set from the environment."""

from pathlib import Path

from pydantic import SecretStr

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    SERVICE_NAME: str = "auth"
    DATABASE_URL: str = "postgresql+asyncpg://auth:auth-dev-only@127.0.0.1:5432/auth"

    ACCESS_TOKEN_TTL: int = 15 * 60
    REFRESH_TOKEN_TTL: int = 7 * 24 * 3600

    #: The signing key, as PEM text or as a file; in development one is generated once
    #: into AUTH_KEYS_DIR when neither is set. Production refuses to start without one.
    AUTH_PRIVATE_KEY: SecretStr | None = None
    AUTH_PRIVATE_KEY_FILE: Path | None = None
    #: Public keys of retired signing keys, still published until their tokens expire.
    AUTH_PREVIOUS_PUBLIC_KEY_FILES: list[Path] = []
    AUTH_KEYS_DIR: Path = Path(".dev/keys")

    #: Created (idempotently) at start-up when both are set.
    FIRST_ADMIN_EMAIL: str | None = "admin@example.com"
    FIRST_ADMIN_PASSWORD: SecretStr | None = SecretStr("admin-password-dev-only")

    #: Failed logins tolerated per account and per client address within the window.
    LOGIN_MAX_FAILURES_PER_ACCOUNT: int = 5
    LOGIN_MAX_FAILURES_PER_ADDRESS: int = 20
    LOGIN_FAILURE_WINDOW: int = 15 * 60

    #: Seconds between two checks that Redis still holds the revocations (see revocations.py).
    REVOCATION_CHECK_INTERVAL: float = 1.0

    VERIFICATION_TOKEN_TTL: int = 48 * 3600
    RESET_TOKEN_TTL: int = 3600
    #: Minimum seconds between two verification or reset mails for one account.
    MAIL_REQUEST_INTERVAL: int = 60

    # Argon2id, OWASP's baseline (19 MiB, 2 passes, 1 lane).
    PASSWORD_HASH_MEMORY_KIB: int = 19 * 1024
    PASSWORD_HASH_TIME_COST: int = 2
    PASSWORD_HASH_PARALLELISM: int = 1


settings = Settings()
