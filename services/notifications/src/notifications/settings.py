"""Settings of the notifications service; every field can be set from the environment."""

from pydantic import Field, SecretStr, field_validator, model_validator

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    SERVICE_NAME: str = "notifications"
    DATABASE_URL: str = (
        "postgresql+asyncpg://notifications:notifications-dev-only@127.0.0.1:5432/notifications"
    )

    #: Where users reach the platform (the gateway): links in mails start with it.
    PUBLIC_URL: str = "http://localhost:8000"

    #: Run the mail sender in this process. Any number of replicas may run it at once.
    RUN_MAILER: bool = True
    SMTP_HOST: str = "127.0.0.1"
    SMTP_PORT: int = Field(default=1025, ge=1, le=65535)
    SMTP_FROM: str = "Platform <no-reply@example.com>"
    #: Seconds one SMTP operation (connect, each command) may take.
    SMTP_TIMEOUT: float = Field(default=10.0, gt=0)
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: SecretStr | None = None
    #: Require STARTTLS (a relay on the internet); the local sink and Mailpit do not offer it.
    SMTP_STARTTLS: bool = False
    #: Name given in EHLO; unset means the machine's FQDN (a DNS lookup that can stall).
    SMTP_LOCAL_HOSTNAME: str | None = "localhost"

    #: Attempts per mail, the first one included; after the last one the delivery is `failed`.
    MAIL_MAX_ATTEMPTS: int = Field(default=5, ge=1)
    #: Delay before the first retry; it doubles with each attempt (with jitter), up to the max.
    MAIL_RETRY_BASE_SECONDS: float = Field(default=2.0, gt=0)
    MAIL_RETRY_MAX_SECONDS: float = Field(default=3600.0, gt=0)
    #: Deliveries claimed per round; they are sent concurrently.
    MAIL_BATCH_SIZE: int = Field(default=10, ge=1, le=100)
    #: Seconds between two looks at the queue when it was empty.
    MAIL_POLL_INTERVAL: float = Field(default=1.0, gt=0)
    #: How long a claimed delivery stays hidden from other senders: if this one dies while
    #: sending, another picks the delivery up after this many seconds.
    MAIL_LEASE_SECONDS: float = Field(default=120.0, gt=0)

    #: Seconds a WebSocket client has to send `{"token": ...}` after connecting.
    WS_AUTH_TIMEOUT: float = Field(default=5.0, gt=0)
    #: Seconds between two checks that a socket's token is still valid (not expired/revoked).
    WS_RECHECK_INTERVAL: float = Field(default=30.0, gt=0)
    #: Notifications buffered per socket for a slow client; beyond that, new ones are dropped.
    WS_QUEUE_SIZE: int = Field(default=100, ge=1)

    @field_validator("PUBLIC_URL")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> "Settings":
        # A send is a few SMTP round trips, each bounded by SMTP_TIMEOUT; a shorter lease
        # would let a second sender pick up a mail that is still being sent.
        if self.MAIL_LEASE_SECONDS < 4 * self.SMTP_TIMEOUT:
            raise ValueError("MAIL_LEASE_SECONDS must be at least 4 x SMTP_TIMEOUT")
        return self


settings = Settings()
