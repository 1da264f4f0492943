"""Redis stops: tokens cannot be checked, so protected routes refuse with 503, never accept.

One outage serves the whole module: before it, a user logs out (its token is revoked);
during it, the tests' observations are collected (protected routes, readiness, login,
refresh, registrations); after it, the same token is tried again and the events the
registrations left in the outbox must reach the mail sink, exactly once each.
"""

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest
from reliability_support import (
    PASSWORD,
    PROTECTED_READS,
    Api,
    Mailbox,
    Measurements,
    User,
    eventually,
    pids,
    query,
    start_process,
    unique_email,
    wait_until_healthy,
)

from devstack.provision import SERVICES
from devstack.stack import Stack

REGISTRATIONS_DURING_OUTAGE = 3
#: Several pooled Redis connections, but no more than the account's failed-login limit (5): each
#: login is counted as a failure until its password is checked, so a sixth login sent together
#: with five others is refused 429 whenever it is counted before any of them is forgiven.
CONCURRENT_LOGINS_AFTER = 5


@dataclass
class RedisOutage:
    live: User
    revoked: User
    pids_before: dict[str, int | None]
    protected: dict[str, httpx.Response] = field(default_factory=dict)
    revoked_during: dict[str, int] = field(default_factory=dict)
    readiness: dict[str, int] = field(default_factory=dict)
    login: httpx.Response | None = None
    refresh: httpx.Response | None = None
    registrations: dict[str, int] = field(default_factory=dict)
    redis_back_at: float = 0.0
    recovery_seconds: float | None = None
    revoked_after: dict[str, int] = field(default_factory=dict)
    logins_after: list[httpx.Response] = field(default_factory=list)


@pytest.fixture(scope="module")
def outage(stack: Stack, api: Api, measurements: Measurements) -> RedisOutage:
    assert stack.redis is not None
    wait_until_healthy(stack)
    live, revoked = api.new_user("redis-live"), api.new_user("redis-revoked")
    assert api.client.post("/api/v1/auth/logout", headers=revoked.headers).status_code == 204
    assert set(api.protected_statuses(revoked).values()) == {401}
    observed = RedisOutage(live=live, revoked=revoked, pids_before=pids(stack))

    stack.redis.stop()
    try:
        try:
            observed.readiness = eventually(
                api.ready_statuses, until=lambda statuses: set(statuses.values()) == {503}
            )
        except AssertionError:  # judged by its test; the other observations still count
            observed.readiness = api.ready_statuses()
        observed.protected = {
            name: api.client.get(path, headers=live.headers)
            for name, path in PROTECTED_READS.items()
        }
        observed.revoked_during = api.protected_statuses(revoked)
        observed.login = api.client.post(
            "/api/v1/auth/token", data={"username": live.email, "password": PASSWORD}
        )
        observed.refresh = api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": live.refresh_token}
        )
        for _ in range(REGISTRATIONS_DURING_OUTAGE):
            email = unique_email("redis-outage")
            observed.registrations[email] = api.register(email).status_code
    finally:
        stack.redis.start()
        observed.redis_back_at = time.monotonic()

    eventually(
        lambda: set(api.protected_statuses(live).values()) == {200},
        timeout=30,
        interval=0.05,
        what="protected routes to serve again",
    )
    observed.recovery_seconds = round(time.monotonic() - observed.redis_back_at, 2)
    observed.revoked_after = api.protected_statuses(revoked)
    with ThreadPoolExecutor(CONCURRENT_LOGINS_AFTER) as pool:  # several pooled connections
        observed.logins_after = list(
            pool.map(
                lambda _: api.client.post(
                    "/api/v1/auth/token", data={"username": live.email, "password": PASSWORD}
                ),
                range(CONCURRENT_LOGINS_AFTER),
            )
        )
    measurements.record("redis_outage", "recovery_seconds", observed.recovery_seconds)
    measurements.record(
        "redis_outage",
        "during",
        {
            "protected": {name: r.status_code for name, r in observed.protected.items()},
            "revoked_token": observed.revoked_during,
            "readiness": observed.readiness,
            "login": observed.login.status_code,
            "refresh": observed.refresh.status_code,
            "registrations": sorted(observed.registrations.values()),
        },
    )
    measurements.record("redis_outage", "revoked_token_after", observed.revoked_after)
    return observed


def test_protected_routes_answer_503_with_a_detail_while_redis_is_down(
    outage: RedisOutage,
) -> None:
    statuses = {name: response.status_code for name, response in outage.protected.items()}
    assert statuses == dict.fromkeys(PROTECTED_READS, 503)
    for response in outage.protected.values():
        detail = response.json().get("detail")
        assert isinstance(detail, str) and detail, response.text


def test_every_service_reports_itself_unready_while_redis_is_down(outage: RedisOutage) -> None:
    assert outage.readiness == dict.fromkeys(SERVICES, 503)


def test_login_and_refresh_answer_503_while_redis_is_down(outage: RedisOutage) -> None:
    assert outage.login is not None and outage.refresh is not None
    assert (outage.login.status_code, outage.refresh.status_code) == (503, 503), (
        outage.login.text,
        outage.refresh.text,
    )


def test_a_token_revoked_before_the_outage_is_refused_during_it(outage: RedisOutage) -> None:
    assert outage.revoked_during == dict.fromkeys(PROTECTED_READS, 503)


def test_a_token_revoked_before_the_outage_is_still_refused_after_it(
    outage: RedisOutage,
) -> None:
    assert outage.revoked_after == dict.fromkeys(PROTECTED_READS, 401)


def test_logins_work_at_once_after_redis_returns(outage: RedisOutage) -> None:
    """The first use of each connection Redis dropped must reconnect, not answer 503."""
    statuses = [response.status_code for response in outage.logins_after]
    assert statuses == [200] * CONCURRENT_LOGINS_AFTER, [r.text for r in outage.logins_after]


def test_registrations_succeed_while_redis_is_down(outage: RedisOutage) -> None:
    assert list(outage.registrations.values()) == [201] * REGISTRATIONS_DURING_OUTAGE


def test_services_serve_again_once_redis_returns_without_restarting(
    stack: Stack, outage: RedisOutage
) -> None:
    assert outage.recovery_seconds is not None and outage.recovery_seconds < 10
    assert pids(stack) == outage.pids_before
    assert stack.dead_processes() == []


def test_events_held_in_the_outbox_are_delivered_once_redis_returns(
    api: Api, mailbox: Mailbox, outage: RedisOutage, measurements: Measurements
) -> None:
    registered = [email for email, status in outage.registrations.items() if status == 201]
    assert registered
    counts = eventually(
        lambda: mailbox.verification_mails(registered),
        until=lambda mails: all(mails.values()),
        timeout=30,
        what="a verification mail for each registration made during the outage",
    )
    measurements.record(
        "redis_outage",
        "mail_delivery_seconds_after_redis_returned",
        round(time.monotonic() - outage.redis_back_at, 2),
    )
    assert counts == dict.fromkeys(registered, 1)
    deliveries = [d for d in api.deliveries(api.admin()) if d["to"] in registered]
    assert sorted(d["to"] for d in deliveries) == sorted(registered)
    assert {d["status"] for d in deliveries} == {"sent"}


def test_events_published_but_not_yet_consumed_survive_a_redis_restart(
    stack: Stack, api: Api, mailbox: Mailbox
) -> None:
    """The relay has handed the events to Redis (the outbox rows are marked published) but
    the consumer has not read them yet when Redis restarts: they must still be handled."""
    assert stack.redis is not None
    notifications = stack.processes["notifications"]
    notifications.stop()
    try:
        emails = [unique_email("redis-restart") for _ in range(2)]
        assert [api.register(email).status_code for email in emails] == [201, 201]
        eventually(
            lambda: query(
                stack,
                "auth",
                "SELECT count(*) AS n FROM outbox_event WHERE type = 'user.registered'"
                " AND data->>'email' = ANY($1) AND published_at IS NOT NULL",
                emails,
            )[0]["n"],
            until=lambda published: published == len(emails),
            what="the relay to publish the events",
        )
        stack.redis.stop()
        stack.redis.start()
    finally:
        start_process(
            stack,
            "notifications",
            f"{stack.config.service_url('notifications')}/api/v1/notifications/health",
        )
    mails = eventually(
        lambda: mailbox.verification_mails(emails),
        until=lambda counts: all(counts.values()),
        timeout=15,
        what="the verification mails of events published before the restart",
    )
    assert mails == dict.fromkeys(emails, 1)
