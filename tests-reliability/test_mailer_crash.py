"""The mailer dies in the middle of an SMTP conversation: the mail is sent again, not lost.

A stand-in SMTP server takes the place of the mail sink and holds its reply to the end of
DATA, so the mail is in flight, claimed but not yet reported, when the notifications
process is killed. After its lease (5 s here) the restarted process sends it again, with
the same Message-ID (the delivery id), so a duplicate can be recognised: mail is at least
once, by design (services/notifications/src/notifications/mailer.py).
"""

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from email import message_from_bytes
from email.utils import getaddresses

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from reliability_support import (
    Api,
    Measurements,
    eventually,
    kill_process_group,
    start_process,
    unique_email,
    wait_until_healthy,
)

from devstack.stack import Stack


class HoldingHandler:
    """Accepts every mail, but answers the first ones' DATA only once `release` is set."""

    def __init__(self, hold: int) -> None:
        self.hold = hold
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.received: dict[str, list[str]] = defaultdict(list)  # address -> Message-IDs

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = message_from_bytes(envelope.original_content or b"")
        with self.lock:
            held = self.hold > 0
            self.hold -= 1
            for _, address in getaddresses(message.get_all("To", [])):
                self.received[address.lower()].append(str(message["Message-ID"]))
        if held:
            await asyncio.to_thread(self.release.wait)
        return "250 2.0.0 Ok"

    def count(self) -> int:
        with self.lock:
            return sum(len(ids) for ids in self.received.values())


@pytest.fixture
def holding_smtp(stack: Stack) -> Iterator[HoldingHandler]:
    """The stand-in on the mail sink's SMTP port, for the span of one test."""
    wait_until_healthy(stack)
    handler = HoldingHandler(hold=1)
    stack.processes["mailsink"].stop()
    controller = Controller(handler, hostname=stack.config.host, port=stack.config.smtp_port)
    controller.start()
    try:
        yield handler
    finally:
        handler.release.set()
        controller.stop()
        start_process(stack, "mailsink", f"{stack.config.mailbox_url}/api/v1/messages")


def test_a_mail_in_flight_when_its_sender_is_killed_is_sent_again_with_the_same_message_id(
    stack: Stack, api: Api, holding_smtp: HoldingHandler, measurements: Measurements
) -> None:
    email = unique_email("mailer-crash")
    assert api.register(email).status_code == 201
    # The mail reaches the server, which holds its answer: in flight, not yet reported.
    eventually(holding_smtp.count, timeout=20, interval=0.01, what="the mail to be in flight")
    kill_process_group(stack, "notifications")
    holding_smtp.release.set()
    killed_at = time.monotonic()
    start_process(
        stack,
        "notifications",
        f"{stack.config.service_url('notifications')}/api/v1/notifications/health",
    )
    received = eventually(
        lambda: list(holding_smtp.received[email]),
        until=lambda ids: len(ids) >= 2,
        timeout=30,
        what="the mail to be sent again",
    )
    measurements.record(
        "mailer_crash", "resent_seconds_after_kill", round(time.monotonic() - killed_at, 2)
    )
    assert len(set(received)) == 1, received
    admin = api.admin()
    [delivery] = eventually(
        lambda: [d for d in api.deliveries(admin) if d["to"] == email],
        until=lambda found: len(found) == 1 and found[0]["status"] == "sent",
        timeout=30,
        what="the delivery to be recorded as sent",
    )
    assert delivery["attempts"] == 2
    assert f"<{delivery['id']}@" in received[0]
    measurements.record("mailer_crash", "copies_received", len(received))
