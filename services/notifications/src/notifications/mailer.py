"""The mail sender: a background loop that sends `pending` and `retrying` deliveries.

Event handlers only write delivery rows; this loop sends them, outside any consumer
transaction, so a crash loses or repeats no event. Several replicas may run it at once:

- Claiming is one short transaction: `SELECT ... FOR UPDATE SKIP LOCKED` picks due rows
  no other sender is claiming, and the same statement moves their `next_attempt_at` past
  a lease and counts the attempt. Sending then holds no lock and no database connection.
- A sender that dies mid-send leaves the row open; when its lease ends the row is due
  again and another sender retries it (so delivery is at least once; the Message-ID is
  the delivery id, so a duplicate can be recognised). An attempt that never reported is
  counted: a mail cannot crash senders forever.
- An outcome is written only if the row still holds the attempt this sender claimed, so
  a sender whose lease ran out cannot overwrite a newer attempt's result.
- A database outage makes a round fail: the loop logs it and backs off, up to 30 s.
"""

import asyncio
import email.errors
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

import aiosmtplib
import jinja2
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from notifications import metrics
from notifications.models import OPEN_STATUSES, Delivery, DeliveryStatus
from notifications.settings import Settings
from servicekit.timestamps import utcnow

logger = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
#: Context entries that are credentials: erased once a delivery is final.
SECRET_CONTEXT_KEYS = frozenset({"token", "link"})
MAX_ERROR_LENGTH = 1000
ROUND_FAILURE_BACKOFF = (1.0, 30.0)  # first and longest pause after a failed round

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
    # A missing variable must fail the delivery, not mail a link without its token.
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_jitter = random.SystemRandom()


def render(template: str, *, subject: str, context: dict[str, Any]) -> tuple[str, str]:
    """The text and HTML bodies of a mail; HTML escapes every value."""
    variables = {**context, "subject": subject}
    text = templates.get_template(f"{template}.txt").render(variables)
    html = templates.get_template(f"{template}.html").render(variables)
    return text, html


def build_message(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str,
    delivery_id: uuid.UUID,
    request_id: str | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow())
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<{delivery_id}@{domain}>"
    if request_id:
        # One id from the client's request, through the event, to the mail it caused.
        message["X-Request-ID"] = request_id
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def _doubled(times: int) -> int:
    """2**times, bounded: hours of outage must not overflow a float and kill the loop."""
    return int(2 ** min(max(times, 0), 32))


def _describe(exc: BaseException) -> str:
    text = str(exc) or "no detail"
    return f"{type(exc).__name__}: {text}"[:MAX_ERROR_LENGTH]


def _public_context(context: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in context.items() if key not in SECRET_CONTEXT_KEYS}


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this sender holds until its lease ends; `attempts` includes this one."""

    id: uuid.UUID
    to: str
    template: str
    subject: str
    context: dict[str, Any]
    attempts: int
    request_id: str | None


class Mailer:
    """Sends due deliveries; `run()` loops forever, `run_once()` is one round (tests)."""

    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker

    def retry_delay(self, attempts: int) -> float:
        """Seconds before the next try after `attempts` failed ones: doubling, with jitter.

        Equal jitter (half fixed, half random) spreads the retries of mails that failed
        together (an SMTP outage) without ever retrying much sooner than planned.
        """
        settings = self.settings
        ceiling = min(
            settings.MAIL_RETRY_MAX_SECONDS,
            settings.MAIL_RETRY_BASE_SECONDS * _doubled(attempts - 1),
        )
        return ceiling / 2 + _jitter.uniform(0, ceiling / 2)

    async def run(self) -> None:
        """Send due mail until cancelled; never spins when the database is down."""
        settings = self.settings
        logger.info("mailer started", extra={"smtp": f"{settings.SMTP_HOST}:{settings.SMTP_PORT}"})
        failures = 0
        while True:
            try:
                claimed = await self.run_once()
            except Exception as exc:  # noqa: BLE001 - any failed round is retried later
                failures += 1
                first, longest = ROUND_FAILURE_BACKOFF
                pause = min(longest, first * _doubled(failures - 1))
                logger.warning("mailer round failed", extra={"err": _describe(exc), "in": pause})
                await asyncio.sleep(pause)
                continue
            failures = 0
            if claimed < settings.MAIL_BATCH_SIZE:
                await asyncio.sleep(settings.MAIL_POLL_INTERVAL)

    async def run_once(self, now: datetime | None = None) -> int:
        """Claim the mail due at `now`, send it, record how it went; how many were claimed."""
        now = now or utcnow()
        claimed = await self._claim(now)
        if claimed:
            results = await asyncio.gather(
                *(self._deliver(delivery, now) for delivery in claimed), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        return len(claimed)

    async def _claim(self, now: datetime) -> list[Claimed]:
        due = (
            select(Delivery.id)
            .where(
                col(Delivery.status).in_([status.value for status in OPEN_STATUSES]),
                col(Delivery.next_attempt_at) <= now,
            )
            .order_by(col(Delivery.next_attempt_at))
            .limit(self.settings.MAIL_BATCH_SIZE)
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(Delivery)
            .where(col(Delivery.id).in_(due.scalar_subquery()))
            .values(
                attempts=col(Delivery.attempts) + 1,
                next_attempt_at=now + timedelta(seconds=self.settings.MAIL_LEASE_SECONDS),
                updated_at=utcnow(),
            )
            .returning(
                col(Delivery.id),
                col(Delivery.to),
                col(Delivery.template),
                col(Delivery.subject),
                col(Delivery.context),
                col(Delivery.attempts),
                col(Delivery.request_id),
            )
            .execution_options(synchronize_session=False)
        )
        async with self.sessionmaker() as session:
            rows = (await session.exec(claim)).all()
            await session.commit()
        return [Claimed(*row) for row in rows]

    async def _deliver(self, delivery: Claimed, now: datetime) -> None:
        if delivery.attempts > self.settings.MAIL_MAX_ATTEMPTS:
            # The last attempt's sender died before saying how it went.
            await self._record_failure(delivery, now, "Stopped during the last attempt")
            return
        try:
            text, html = render(
                delivery.template, subject=delivery.subject, context=delivery.context
            )
            message = build_message(
                sender=self.settings.SMTP_FROM,
                to=delivery.to,
                subject=delivery.subject,
                text=text,
                html=html,
                delivery_id=delivery.id,
                request_id=delivery.request_id,
            )
        except (jinja2.TemplateError, ValueError, email.errors.MessageError) as exc:
            # Retrying cannot fix a broken template or address: fail at once, visibly.
            logger.exception("mail cannot be built", extra={"delivery_id": str(delivery.id)})
            await self._record_failure(delivery, now, _describe(exc), final=True)
            return
        try:
            await self._send(message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            logger.warning(
                "mail not sent",
                extra={
                    "delivery_id": str(delivery.id),
                    "attempt": delivery.attempts,
                    "err": _describe(exc),
                },
            )
            await self._record_failure(delivery, now, _describe(exc))
            return
        logger.info(
            "mail sent", extra={"delivery_id": str(delivery.id), "template": delivery.template}
        )
        await self._record(
            delivery,
            status=DeliveryStatus.SENT,
            sent_at=utcnow(),
            context=_public_context(delivery.context),
        )

    async def _send(self, message: EmailMessage) -> None:
        settings = self.settings
        password = settings.SMTP_PASSWORD.get_secret_value() if settings.SMTP_PASSWORD else None
        # SMTP_TIMEOUT bounds each step; this bounds the whole conversation, within the lease.
        async with asyncio.timeout(3 * settings.SMTP_TIMEOUT):
            await aiosmtplib.send(
                message,
                hostname=settings.SMTP_HOST,
                port=settings.SMTP_PORT,
                username=settings.SMTP_USERNAME,
                password=password,
                start_tls=settings.SMTP_STARTTLS,
                timeout=settings.SMTP_TIMEOUT,
                local_hostname=settings.SMTP_LOCAL_HOSTNAME,
            )

    async def _record_failure(
        self, delivery: Claimed, now: datetime, error: str, *, final: bool = False
    ) -> None:
        if final or delivery.attempts >= self.settings.MAIL_MAX_ATTEMPTS:
            await self._record(
                delivery,
                status=DeliveryStatus.FAILED,
                last_error=error,
                context=_public_context(delivery.context),
            )
        else:
            retry_at = now + timedelta(seconds=self.retry_delay(delivery.attempts))
            await self._record(
                delivery, status=DeliveryStatus.RETRYING, last_error=error, next_attempt_at=retry_at
            )

    async def _record(self, delivery: Claimed, *, status: DeliveryStatus, **values: Any) -> None:
        """Write the outcome, unless another sender has claimed the delivery since."""
        statement = (
            update(Delivery)
            .where(
                col(Delivery.id) == delivery.id,
                col(Delivery.attempts) == delivery.attempts,
                col(Delivery.status).in_([open_status.value for open_status in OPEN_STATUSES]),
            )
            .values(status=status.value, updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )
        async with self.sessionmaker() as session:
            await session.exec(statement)
            await session.commit()
        metrics.record_outcome(status.value, delivery.attempts)
