"""PostgreSQL goes away (a clean stop, then a crash) and comes back; the services never restart.

While it is away, clients keep working through the gateway: one reads a route of every
service, three PATCH an item each with `If-Match`, one registers accounts. Every answer
is recorded. Afterwards: nothing ever answered 500, the services serve again on their
own, and nothing was half-applied: a PATCH that failed either took effect completely (new
title, version + 1, its `item.updated` event) or not at all, and a registration that
failed either exists with its `user.registered` event and verification mail or not at all.
"""

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from reliability_support import (
    PROTECTED_READS,
    Api,
    Mailbox,
    Measurements,
    User,
    eventually,
    pids,
    query,
    unique_email,
    wait_until_healthy,
)

from devstack.stack import Stack

#: PostgreSQL stays away this long at least, and until every client has met this many
#: failures: the outage is real for all of them.
MINIMUM_OUTAGE = 2.0
FAILURES_PER_CLIENT = 3
#: Items PATCHed at once, each by its own client.
PATCHERS = 3
#: The statuses a client may see at any time: a success, or 503 while PostgreSQL is away.
ACCEPTABLE = {200, 201, 503}


@dataclass
class Answer:
    client: str
    method: str
    path: str
    status: int
    body: str
    at: float


@dataclass
class PatchAttempt:
    item_id: str
    title: str
    version_before: int
    title_before: str
    status: int
    #: The item as read once the PATCH had answered (after the outage, for a 503).
    version_after: int = 0
    title_after: str = ""


@dataclass
class Traffic:
    """Clients that use the platform across the outage, recording every answer."""

    gateway_url: str
    user: User
    #: Items to PATCH, one client each: (item as created, its ETag).
    items: list[tuple[dict[str, Any], str]]
    answers: list[Answer] = field(default_factory=list)
    patches: list[PatchAttempt] = field(default_factory=list)
    registrations: dict[str, int] = field(default_factory=dict)
    #: Exceptions that ended a client early (a transport error is a failure too).
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        targets: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
            (self._read, ()),
            (self._register, ()),
            *((self._patch, (item, etag)) for item, etag in self.items),
        ]
        for target, args in targets:
            thread = threading.Thread(target=self._guarded, args=(target, *args), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _guarded(self, target: Callable[..., None], *args: Any) -> None:
        try:
            target(*args)
        except Exception as exc:  # noqa: BLE001 - reported by the tests, not lost in a thread
            self.errors.append(f"{target.__name__}: {exc!r}")

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _call(
        self, client: httpx.Client, name: str, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        response = client.request(method, path, **kwargs)
        self.answers.append(
            Answer(name, method, path, response.status_code, response.text[:300], time.monotonic())
        )
        return response

    def _read(self) -> None:
        # Lists go through a session, a single item through the read pool: both must cope.
        one_item = f"/api/v1/items/{self.items[0][0]['id']}"
        with httpx.Client(base_url=self.gateway_url, timeout=15) as client:
            while not self.stop.is_set():
                for path in (*PROTECTED_READS.values(), one_item):
                    self._call(client, "reader", "GET", path, headers=self.user.headers)

    def _patch(self, item: dict[str, Any], etag: str) -> None:
        item_id, number = item["id"], 0
        version, title = item["version"], item["title"]
        with httpx.Client(base_url=self.gateway_url, timeout=15) as client:
            while not self.stop.is_set():
                number += 1
                attempt = PatchAttempt(item_id, f"patch-{number}", version, title, 0)
                response = self._call(
                    client,
                    "patcher",
                    "PATCH",
                    f"/api/v1/items/{item_id}",
                    headers={**self.user.headers, "If-Match": etag},
                    json={"title": attempt.title},
                )
                attempt.status = response.status_code
                if response.status_code != 200:
                    # The outcome is unknown to the client: read the item once it can.
                    response = eventually(
                        lambda: self._call(
                            client,
                            "patcher",
                            "GET",
                            f"/api/v1/items/{item_id}",
                            headers=self.user.headers,
                        ),
                        until=lambda answer: answer.status_code == 200,
                        timeout=60,
                        interval=0.05,
                        what="the item to be readable again",
                    )
                body = response.json()
                attempt.version_after, attempt.title_after = body["version"], body["title"]
                version, title, etag = body["version"], body["title"], response.headers["ETag"]
                self.patches.append(attempt)

    def _register(self) -> None:
        with httpx.Client(base_url=self.gateway_url, timeout=15) as client:
            while not self.stop.is_set():
                email = unique_email("pg-outage")
                response = self._call(
                    client,
                    "registrar",
                    "POST",
                    "/api/v1/auth/register",
                    json={"email": email, "password": "reliability-password-1"},
                )
                self.registrations[email] = response.status_code

    def statuses(self, client: str, since: float = 0.0) -> Counter[int]:
        return Counter(a.status for a in self.answers if a.client == client and a.at >= since)


@dataclass
class PostgresOutage:
    mode: str
    traffic: Traffic
    pids_before: dict[str, int | None]
    outage_seconds: float
    ready_seconds: float
    traffic_seconds: float


CLIENTS = ("reader", "patcher", "registrar")  # the patchers count as one


def _break(stack: Stack, mode: str) -> None:
    assert stack.postgres is not None
    if mode == "stop":
        stack.postgres.stop()  # pg_ctl stop --mode fast: connections are terminated
    else:
        stack.postgres.kill()  # SIGKILL the postmaster: a crash, recovered on start


@pytest.fixture(scope="module", params=["stop", "kill"], ids=["clean-stop", "crash"])
def outage(
    request: pytest.FixtureRequest, stack: Stack, api: Api, measurements: Measurements
) -> PostgresOutage:
    mode: str = request.param
    assert stack.postgres is not None
    wait_until_healthy(stack)
    user = api.new_user("pg-outage")
    items = []
    for _ in range(PATCHERS):
        created = api.client.post("/api/v1/items/", headers=user.headers, json={"title": "v1"})
        assert created.status_code == 201, created.text
        items.append((created.json(), created.headers["ETag"]))
    traffic = Traffic(stack.config.gateway_url, user, items)
    pids_before = pids(stack)
    traffic.start()
    try:
        eventually(
            lambda: all(traffic.statuses(client)[200] + traffic.statuses(client)[201]
                        for client in CLIENTS),
            timeout=30,
            what="every client to have succeeded once before the outage",
        )  # fmt: skip
        went_down = time.monotonic()
        _break(stack, mode)
        try:
            eventually(
                lambda: (
                    time.monotonic() - went_down >= MINIMUM_OUTAGE
                    and all(
                        sum(n for s, n in traffic.statuses(c, went_down).items() if s >= 500)
                        >= FAILURES_PER_CLIENT
                        for c in CLIENTS
                    )
                ),
                timeout=30,
                what="every client to meet the outage",
            )
        finally:
            stack.postgres.start()
        came_back = time.monotonic()
        eventually(
            lambda: set(api.ready_statuses().values()) == {200},
            timeout=30,
            interval=0.05,
            what="every service ready again",
        )
        ready_seconds = time.monotonic() - came_back
        eventually(
            lambda: all(
                traffic.statuses(c, came_back)[200] + traffic.statuses(c, came_back)[201]
                for c in CLIENTS
            ),
            timeout=30,
            interval=0.05,
            what="every client to succeed again",
        )
        traffic_seconds = time.monotonic() - came_back
    finally:
        traffic.finish()
    observed = PostgresOutage(
        mode,
        traffic,
        pids_before,
        outage_seconds=round(came_back - went_down, 2),
        ready_seconds=round(ready_seconds, 2),
        traffic_seconds=round(traffic_seconds, 2),
    )
    scenario = f"postgres_{mode}"
    measurements.record(scenario, "outage_seconds", observed.outage_seconds)
    measurements.record(scenario, "ready_seconds_after_start", observed.ready_seconds)
    measurements.record(scenario, "traffic_seconds_after_start", observed.traffic_seconds)
    measurements.record(
        scenario,
        "statuses",
        {c: dict(sorted(traffic.statuses(c).items())) for c in CLIENTS},
    )
    measurements.record(
        scenario,
        "patches_that_failed",
        sum(attempt.status != 200 for attempt in traffic.patches),
    )
    return observed


def test_requests_during_the_outage_get_503_never_500(outage: PostgresOutage) -> None:
    unexpected = [
        f"{a.method} {a.path} -> {a.status} {a.body}"
        for a in outage.traffic.answers
        if a.status not in ACCEPTABLE
    ]
    assert not unexpected, "\n".join(unexpected)
    assert outage.traffic.errors == []
    for answer in outage.traffic.answers:
        if answer.status == 503:
            assert '"detail"' in answer.body, answer.body


def test_services_recover_without_being_restarted(
    stack: Stack, api: Api, outage: PostgresOutage
) -> None:
    assert outage.ready_seconds < 10
    assert outage.traffic_seconds < 10
    assert pids(stack) == outage.pids_before
    assert stack.dead_processes() == []
    assert set(api.ready_statuses().values()) == {200}


def test_a_patch_during_the_outage_is_applied_fully_or_not_at_all(
    stack: Stack, outage: PostgresOutage
) -> None:
    attempts = outage.traffic.patches
    assert any(attempt.status != 200 for attempt in attempts), "no PATCH met the outage"
    for attempt in attempts:
        applied = (attempt.title_after, attempt.version_after) == (
            attempt.title,
            attempt.version_before + 1,
        )
        untouched = (attempt.title_after, attempt.version_after) == (
            attempt.title_before,
            attempt.version_before,
        )
        assert applied if attempt.status == 200 else (applied or untouched), attempt
    # Every applied version has exactly one `item.updated` event, committed with it.
    for item, _ in outage.traffic.items:
        [row] = query(stack, "items", "SELECT version FROM item WHERE id = $1", item["id"])
        events = query(
            stack,
            "items",
            "SELECT count(*) AS n FROM outbox_event"
            " WHERE type = 'item.updated' AND data->>'item_id' = $1",
            item["id"],
        )
        assert events[0]["n"] == row["version"] - 1, item["id"]


def test_a_registration_during_the_outage_exists_with_its_event_or_not_at_all(
    stack: Stack, mailbox: Mailbox, outage: PostgresOutage
) -> None:
    registrations = outage.traffic.registrations
    refused = [email for email, status in registrations.items() if status != 201]
    assert refused, "no registration met the outage"
    accounts = {
        row["email"]
        for row in query(
            stack, "auth", "SELECT email FROM account WHERE email = ANY($1)", list(registrations)
        )
    }
    events = Counter(
        row["email"]
        for row in query(
            stack,
            "auth",
            "SELECT data->>'email' AS email FROM outbox_event"
            " WHERE type = 'user.registered' AND data->>'email' = ANY($1)",
            list(registrations),
        )
    )
    assert {email for email, status in registrations.items() if status == 201} <= accounts
    assert events == Counter(accounts)
    expected_mails = {email: int(email in accounts) for email in registrations}
    mails = eventually(
        lambda: mailbox.verification_mails(registrations),
        until=lambda counts: counts == expected_mails,
        timeout=30,
        what="exactly one verification mail per account that exists, none for the others",
    )
    assert mails == expected_mails
