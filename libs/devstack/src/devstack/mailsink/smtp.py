"""SMTP side of the sink: aiosmtpd in the caller's event loop, accepting everything.

We create the listening server ourselves instead of using aiosmtpd's `Controller`
(which runs its own loop in a thread) so that SMTP and HTTP share one loop, start and
stop together, and a test's `async with MailSink()` needs no threads.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import weakref
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from devstack.mailsink.message import parse_message
from devstack.mailsink.store import MessageStore

__all__ = ["SinkHandler", "SmtpServer"]


class _DropLoginDataWarning(logging.Filter):
    """aiosmtpd 1.4 logs a deprecation warning from its own code on every AUTH."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_DropLoginDataWarning())


class SinkHandler:
    """aiosmtpd handler: every sender and recipient is accepted and the message stored."""

    def __init__(self, store: MessageStore) -> None:
        self.store = store

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        message = parse_message(
            raw,
            envelope_from=envelope.mail_from or "",
            envelope_recipients=envelope.rcpt_tos,
            username=_username(session),
        )
        self.store.add(message)
        return f"250 2.0.0 Ok: queued as {message.id}"


def _username(session: Session) -> str:
    auth = session.auth_data
    if isinstance(auth, LoginPassword):
        return auth.login.decode(errors="replace")
    return ""


def _accept_any_login(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    """Like Mailpit's --smtp-auth-accept-any: services configured with SMTP credentials
    must be able to log in, and the sink has nothing to protect."""
    return AuthResult(success=True, auth_data=auth_data)


class SmtpServer:
    """Listening SMTP server bound to an already-open socket."""

    def __init__(self, store: MessageStore, sock: socket.socket) -> None:
        self._handler = SinkHandler(store)
        self._sock = sock
        self._server: asyncio.Server | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def _new_session(self) -> SMTP:
        session = SMTP(
            self._handler,
            hostname="mailsink",  # the default, socket.getfqdn(), can stall on DNS
            enable_SMTPUTF8=True,
            auth_require_tls=False,
            authenticator=_accept_any_login,
        )
        self._sessions.add(session)
        return session

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_session, sock=self._sock)

    async def stop(self) -> None:
        """Stop listening and drop open sessions, so a client sees the outage at once."""
        if self._server is None:
            return
        self._server.close()
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        # Since Python 3.12 wait_closed() also waits for client connections to end.
        await self._server.wait_closed()
        self._server = None
