"""Handlers of the events the notifications service consumes, keyed by event type.

A handler runs inside the consumer's transaction and does not commit: the consumer
commits, records the event id, then acknowledges the message. Handlers only write rows:
a notification (pushed to open sockets after that commit, see `push`) and `pending`
deliveries that the mailer sends later. Nothing leaves the process inside the
transaction, so a crash before the commit repeats nothing and loses nothing.
"""

import uuid
from urllib.parse import quote

from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from notifications import service
from notifications.models import NotificationKind
from notifications.settings import settings
from servicekit.events.envelope import Envelope, Handler
from servicekit.events.erasures import guard_erased_accounts

WELCOME_TITLE = "Welcome!"
WELCOME_BODY = "Your account is ready. Confirm your email address with the link we mailed you."
PASSWORD_CHANGED_TITLE = "Your password was changed"
PASSWORD_CHANGED_BODY = (
    "Every session was signed out. If this was not you, ask for a password reset at once."
)
VERIFY_SUBJECT = "Confirm your email address"
RESET_SUBJECT = "Reset your password"
PASSWORD_CHANGED_SUBJECT = "Your password was changed"


# ---- payloads, as the auth service publishes them -----------------------------------------


class UserRegistered(BaseModel):
    user_id: uuid.UUID
    email: str
    full_name: str | None = None
    #: None for an account that needs no verification (the first admin, from settings).
    verification_token: str | None = None


class VerificationRequested(BaseModel):
    user_id: uuid.UUID
    email: str
    verification_token: str


class PasswordResetRequested(BaseModel):
    user_id: uuid.UUID
    email: str
    reset_token: str


class PasswordChanged(BaseModel):
    user_id: uuid.UUID
    email: str


class UserDeleted(BaseModel):
    user_id: uuid.UUID


# ---- links --------------------------------------------------------------------------------


def verification_link(token: str) -> str:
    return f"{settings.PUBLIC_URL}/api/v1/auth/verify-email?token={quote(token, safe='')}"


def reset_link(token: str) -> str:
    return f"{settings.PUBLIC_URL}/reset-password?token={quote(token, safe='')}"


def _queue_verification(
    session: AsyncSession, *, user_id: uuid.UUID, email: str, name: str, token: str
) -> None:
    service.queue_mail(
        session=session,
        user_id=user_id,
        to=email,
        template="verify_email",
        subject=VERIFY_SUBJECT,
        context={"name": name, "link": verification_link(token), "token": token},
    )


# ---- handlers -----------------------------------------------------------------------------


async def on_user_registered(session: AsyncSession, envelope: Envelope) -> None:
    """Welcome the new user, and mail the verification link when there is one.

    The mail greets the address, not the name typed at registration: until the link is
    followed, the recipient may be a stranger, and the name the sender's own words."""
    event = UserRegistered.model_validate(envelope.data)
    service.notify(
        session=session,
        user_id=event.user_id,
        kind=NotificationKind.WELCOME,
        title=WELCOME_TITLE,
        body=WELCOME_BODY,
    )
    if event.verification_token is not None:
        _queue_verification(
            session,
            user_id=event.user_id,
            email=event.email,
            name=event.email,
            token=event.verification_token,
        )


async def on_verification_requested(session: AsyncSession, envelope: Envelope) -> None:
    """Mail a new verification link (the user asked for a resend)."""
    event = VerificationRequested.model_validate(envelope.data)
    _queue_verification(
        session,
        user_id=event.user_id,
        email=event.email,
        name=event.email,
        token=event.verification_token,
    )


async def on_password_reset_requested(session: AsyncSession, envelope: Envelope) -> None:
    """Mail the reset link, and the raw token for clients without the reset page."""
    event = PasswordResetRequested.model_validate(envelope.data)
    service.queue_mail(
        session=session,
        user_id=event.user_id,
        to=event.email,
        template="reset_password",
        subject=RESET_SUBJECT,
        context={
            "name": event.email,
            "link": reset_link(event.reset_token),
            "token": event.reset_token,
        },
    )


async def on_password_changed(session: AsyncSession, envelope: Envelope) -> None:
    """Tell the user, in the app and by mail: if it was not them, they must act."""
    event = PasswordChanged.model_validate(envelope.data)
    service.notify(
        session=session,
        user_id=event.user_id,
        kind=NotificationKind.SECURITY,
        title=PASSWORD_CHANGED_TITLE,
        body=PASSWORD_CHANGED_BODY,
    )
    service.queue_mail(
        session=session,
        user_id=event.user_id,
        to=event.email,
        template="password_changed",
        subject=PASSWORD_CHANGED_SUBJECT,
        context={"name": event.email, "public_url": settings.PUBLIC_URL},
    )


async def on_user_deleted(session: AsyncSession, envelope: Envelope) -> None:
    """Erase the user's notifications and deliveries."""
    event = UserDeleted.model_validate(envelope.data)
    await service.erase_user(session=session, user_id=event.user_id)


HANDLERS: dict[str, Handler] = guard_erased_accounts(
    {
        "user.registered": on_user_registered,
        "auth.verification_requested": on_verification_requested,
        "auth.password_reset_requested": on_password_reset_requested,
        "auth.password_changed": on_password_changed,
        "user.deleted": on_user_deleted,
    },
    erasing="user.deleted",
)
