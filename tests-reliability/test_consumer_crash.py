"""The notifications consumer dies by SIGKILL while 200 registrations flow, then restarts.

Whatever it had read but not acknowledged stays pending in its consumer group; the
restarted process claims it (EVENT_CLAIM_IDLE_MS is 1 s here), and the processed-event
records stop a redelivered event from acting twice. So every account gets exactly one
verification mail, and nothing ends in the dead-letter stream.
"""

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest
import redis
from reliability_support import (
    Api,
    Mailbox,
    Measurements,
    eventually,
    kill_process_group,
    start_process,
    unique_email,
    wait_until_healthy,
)

from devstack.stack import Stack

ACCOUNTS = 200
CLIENTS = 8
KILL_AFTER = 60  # registrations answered before the consumer is killed
RESTART_AFTER = 130  # ... and before it is started again


@dataclass
class ConsumerCrash:
    statuses: dict[str, int] = field(default_factory=dict)
    mailed_at_kill: int = 0
    restarted_at: float = 0.0
    registration_seconds: float = 0.0


@pytest.fixture(scope="module")
def crash(stack: Stack, mailbox: Mailbox, measurements: Measurements) -> ConsumerCrash:
    wait_until_healthy(stack)
    observed = ConsumerCrash()
    emails = [unique_email("consumer-crash") for _ in range(ACCOUNTS)]
    lock = threading.Lock()
    local = threading.local()

    def register(email: str) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=stack.config.gateway_url, timeout=30)
        response = local.client.post(
            "/api/v1/auth/register", json={"email": email, "password": "reliability-password-1"}
        )
        with lock:
            observed.statuses[email] = response.status_code

    health = f"{stack.config.service_url('notifications')}/api/v1/notifications/health"
    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(register, email) for email in emails]
        eventually(lambda: len(observed.statuses) >= KILL_AFTER, timeout=60, interval=0.01)
        kill_process_group(stack, "notifications")
        observed.mailed_at_kill = sum(mailbox.verification_mails(emails).values())
        eventually(lambda: len(observed.statuses) >= RESTART_AFTER, timeout=60, interval=0.01)
        start_process(stack, "notifications", health)
        observed.restarted_at = time.monotonic()
        for future in futures:
            future.result()
    observed.registration_seconds = round(time.monotonic() - started, 1)
    measurements.record("consumer_crash", "accounts", ACCOUNTS)
    measurements.record("consumer_crash", "registration_seconds", observed.registration_seconds)
    measurements.record("consumer_crash", "mails_before_kill", observed.mailed_at_kill)
    return observed


def test_registrations_succeed_while_the_consumer_is_dead(crash: ConsumerCrash) -> None:
    assert len(crash.statuses) == ACCOUNTS
    assert set(crash.statuses.values()) == {201}


def test_the_consumer_was_killed_mid_stream(crash: ConsumerCrash) -> None:
    assert crash.mailed_at_kill < ACCOUNTS


@pytest.fixture(scope="module")
def mails(
    mailbox: Mailbox, crash: ConsumerCrash, measurements: Measurements
) -> dict[str, list[str]]:
    """The Message-ID of every verification mail each account received, once all arrived."""
    emails = list(crash.statuses)
    eventually(
        lambda: mailbox.verification_mails(emails),
        until=lambda counts: all(counts.values()),
        timeout=60,
        interval=0.25,
        what="a verification mail for every account",
    )
    measurements.record(
        "consumer_crash",
        "all_mails_seconds_after_restart",
        round(time.monotonic() - crash.restarted_at, 2),
    )
    received = mailbox.verification_message_ids(emails)
    measurements.record(
        "consumer_crash",
        "resent_copies",
        sum(len(ids) - len(set(ids)) for ids in received.values()),
    )
    return received


def test_every_account_gets_exactly_one_verification_mail_after_a_consumer_crash(
    api: Api, crash: ConsumerCrash, mails: dict[str, list[str]]
) -> None:
    """One delivery per account, whatever the consumer had read, handled or acknowledged."""
    assert {email: len(set(ids)) for email, ids in mails.items()} == dict.fromkeys(mails, 1)
    deliveries = [d for d in api.deliveries(api.admin()) if d["to"] in crash.statuses]
    assert Counter(d["to"] for d in deliveries) == dict.fromkeys(crash.statuses, 1)


def test_a_mail_sent_again_after_the_crash_is_the_same_delivery(
    mails: dict[str, list[str]],
) -> None:
    """A mail accepted by SMTP just before the kill, but not yet recorded as sent, goes out
    again when its lease ends (the mailer is at least once); the copy must carry the same
    Message-ID, so that it can be recognised."""
    copies = {email: ids for email, ids in mails.items() if len(ids) != 1}
    assert all(len(set(ids)) == 1 for ids in copies.values()), copies


def test_no_event_is_dead_lettered_by_the_crash(stack: Stack, crash: ConsumerCrash) -> None:
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    try:
        assert client.xlen("events.dead-letter") == 0
    finally:
        client.close()
