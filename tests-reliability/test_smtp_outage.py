"""The SMTP server is down for a while: mail waits as `retrying`, then goes out exactly once.

The mail sink (the stack's SMTP server) is stopped, accounts register, and their
verification deliveries are seen retrying with the connection error; once the sink is
back every delivery becomes `sent` and every account holds exactly one mail.
"""

import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from reliability_support import (
    Api,
    Mailbox,
    Measurements,
    User,
    eventually,
    start_process,
    unique_email,
    wait_until_healthy,
)

from devstack.stack import Stack

ACCOUNTS = 5


@dataclass
class SmtpOutage:
    admin: User
    statuses: dict[str, int] = field(default_factory=dict)
    retrying: list[dict[str, Any]] = field(default_factory=list)
    sink_back_at: float = 0.0


def _verification_deliveries(
    api: Api, admin: User, emails: list[str], status: str | None
) -> list[dict[str, Any]]:
    return [
        d
        for d in api.deliveries(admin, status=status)
        if d["to"] in emails and d["template"] == "verify_email"
    ]


@pytest.fixture(scope="module")
def outage(stack: Stack, api: Api, measurements: Measurements) -> SmtpOutage:
    wait_until_healthy(stack)
    observed = SmtpOutage(admin=api.admin())
    stack.processes["mailsink"].stop()
    try:
        for _ in range(ACCOUNTS):
            email = unique_email("smtp-outage")
            observed.statuses[email] = api.register(email).status_code
        emails = list(observed.statuses)
        observed.retrying = eventually(
            lambda: _verification_deliveries(api, observed.admin, emails, "retrying"),
            until=lambda found: len(found) == ACCOUNTS,
            timeout=30,
            what="every verification delivery to be retrying",
        )
    finally:
        start_process(stack, "mailsink", f"{stack.config.mailbox_url}/api/v1/messages")
        observed.sink_back_at = time.monotonic()
    return observed


def test_registrations_succeed_while_smtp_is_down(outage: SmtpOutage) -> None:
    assert list(outage.statuses.values()) == [201] * ACCOUNTS


def test_deliveries_are_retrying_with_the_error_while_smtp_is_down(outage: SmtpOutage) -> None:
    assert sorted(d["to"] for d in outage.retrying) == sorted(outage.statuses)
    for delivery in outage.retrying:
        assert delivery["status"] == "retrying"
        assert delivery["attempts"] >= 1
        assert delivery["last_error"], delivery


def test_every_mail_is_sent_exactly_once_when_smtp_returns(
    api: Api, mailbox: Mailbox, outage: SmtpOutage, measurements: Measurements
) -> None:
    emails = list(outage.statuses)
    sent = eventually(
        lambda: _verification_deliveries(api, outage.admin, emails, "sent"),
        until=lambda sent: len(sent) == ACCOUNTS,
        timeout=30,
        what="every verification delivery to be sent",
    )
    measurements.record(
        "smtp_outage", "all_sent_seconds_after_smtp_returned",
        round(time.monotonic() - outage.sink_back_at, 2),
    )  # fmt: skip
    measurements.record("smtp_outage", "attempts", sorted(d["attempts"] for d in sent))
    deliveries = _verification_deliveries(api, outage.admin, emails, None)
    assert sorted(d["to"] for d in deliveries) == sorted(emails)
    assert {d["status"] for d in deliveries} == {"sent"}
    assert mailbox.verification_mails(emails) == dict.fromkeys(emails, 1)
