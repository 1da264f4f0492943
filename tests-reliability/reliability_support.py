"""Helpers of the reliability suite: the stack's settings, clients, polling and the database.

Everything goes through the gateway and the mail sink, like a client would, except the
checks that a change and its outbox event were committed together: those read the
services' databases directly (the stack's private PostgreSQL, as superuser).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx

from devstack.provision import SERVICES
from devstack.stack import Stack

PASSWORD = "reliability-password-1"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-dev-only"
VERIFY_SUBJECT = "Confirm your email address"

#: The one stack every reliability test shares. Values are lowered so that outcomes which
#: normally take minutes (claiming a dead consumer's messages, mail retries) take seconds.
STACK_ENV = {
    # The credential routes' rate limit would refuse bursts of registrations.
    "GATEWAY_AUTH_RATE_AVERAGE": "100000",
    "GATEWAY_AUTH_RATE_BURST": "100000",
    # A killed consumer's pending messages are claimed by the next one after 1 s.
    "EVENT_CLAIM_IDLE_MS": "1000",
    # The mailer polls often, retries soon and for long enough to outlast an SMTP outage.
    "MAIL_POLL_INTERVAL": "0.2",
    "MAIL_RETRY_BASE_SECONDS": "0.5",
    "MAIL_RETRY_MAX_SECONDS": "2",
    "MAIL_MAX_ATTEMPTS": "40",
    # A sender killed mid-send gives its mail back after 5 s instead of 2 minutes.
    "SMTP_TIMEOUT": "1",
    "MAIL_LEASE_SECONDS": "5",
    # The credential races log in with passwords the change has just made wrong, from one address.
    "LOGIN_MAX_FAILURES_PER_ADDRESS": "100000",
}

#: Routes that need a valid access token, one per service.
PROTECTED_READS = {
    "auth": "/api/v1/auth/me",
    "users": "/api/v1/users/me",
    "items": "/api/v1/items/",
    "notifications": "/api/v1/notifications/",
}

T = TypeVar("T")


def eventually(
    check: Callable[[], T],
    *,
    until: Callable[[T], object] = bool,
    timeout: float = 20.0,
    interval: float = 0.1,
    what: str = "",
) -> T:
    """Poll `check` until `until` holds for its answer (by default: a truthy answer).

    Returns that answer; fails with the last one when `timeout` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"after {timeout:.0f}s still waiting for {what or check}; last: {result!r}"
            )
        time.sleep(interval)


def unique_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class User:
    email: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


class Api:
    """A client of the gateway with the few calls the scenarios repeat."""

    def __init__(self, gateway_url: str, *, timeout: float = 15.0) -> None:
        self.base_url = gateway_url
        self.client = httpx.Client(base_url=gateway_url, timeout=timeout)

    def close(self) -> None:
        self.client.close()

    def register(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return self.client.post(
            "/api/v1/auth/register", json={"email": email, "password": password}
        )

    def login(self, email: str, password: str = PASSWORD) -> User:
        response = self.client.post(
            "/api/v1/auth/token", data={"username": email, "password": password}
        )
        assert response.status_code == 200, response.text
        tokens = response.json()
        return User(email, tokens["access_token"], tokens["refresh_token"])

    def new_user(self, prefix: str) -> User:
        email = unique_email(prefix)
        registered = self.register(email)
        assert registered.status_code == 201, registered.text
        return self.login(email)

    def admin(self) -> User:
        return self.login(ADMIN_EMAIL, ADMIN_PASSWORD)

    def ready_statuses(self) -> dict[str, int]:
        return {name: self.client.get(f"/api/v1/{name}/ready").status_code for name in SERVICES}

    def protected_statuses(self, user: User) -> dict[str, int]:
        return {
            name: self.client.get(path, headers=user.headers).status_code
            for name, path in PROTECTED_READS.items()
        }

    def deliveries(self, admin: User, *, status: str | None = None) -> list[dict[str, Any]]:
        """Every outgoing mail (newest first), optionally in one status; pages through all."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100, "offset": 0}
        if status:
            params["status"] = status
        while True:
            response = self.client.get(
                "/api/v1/notifications/deliveries", headers=admin.headers, params=params
            )
            assert response.status_code == 200, response.text
            page = response.json()
            found += page["items"]
            params["offset"] += 100
            if params["offset"] >= page["total"]:
                return found


class Mailbox:
    """The stack's mail sink, read through its Mailpit-compatible API."""

    def __init__(self, mailbox_url: str) -> None:
        self.client = httpx.Client(base_url=mailbox_url, timeout=10.0)

    def close(self) -> None:
        self.client.close()

    def messages(self) -> list[dict[str, Any]]:
        response = self.client.get("/api/v1/messages", params={"limit": 100_000})
        response.raise_for_status()
        return list(response.json()["messages"])

    def verification_mails(self, addresses: Iterable[str]) -> Counter[str]:
        """How many verification mails each of `addresses` received (zero included)."""
        wanted = {address.lower() for address in addresses}
        counts: Counter[str] = Counter(dict.fromkeys(wanted, 0))
        for message in self.messages():
            if VERIFY_SUBJECT not in message["Subject"]:
                continue
            for recipient in message["To"]:
                address = recipient["Address"].lower()
                if address in wanted:
                    counts[address] += 1
        return counts

    def verification_message_ids(self, addresses: Iterable[str]) -> dict[str, list[str]]:
        """The Message-ID (one per delivery) of every verification mail each address got."""
        wanted = {address.lower() for address in addresses}
        ids: dict[str, list[str]] = {address: [] for address in wanted}
        for message in self.messages():
            if VERIFY_SUBJECT not in message["Subject"]:
                continue
            for recipient in message["To"]:
                address = recipient["Address"].lower()
                if address in wanted:
                    ids[address].append(message["MessageID"])
        return ids


def wait_until_healthy(stack: Stack, *, timeout: float = 60.0) -> None:
    """Undo whatever a failed test left behind: servers down, processes dead, not ready."""
    if stack.postgres is not None and not stack.postgres.is_running():
        stack.postgres.start()
    if stack.redis is not None and not stack.redis.is_running():
        stack.redis.start()
    for name in stack.dead_processes():
        stack.processes[name].start()
    api = Api(stack.config.gateway_url, timeout=5.0)
    try:
        eventually(
            lambda: set(api.ready_statuses().values()) == {200},
            timeout=timeout,
            interval=0.2,
            what="every service ready",
        )
        eventually(
            lambda: httpx.get(f"{stack.config.mailbox_url}/api/v1/messages").status_code == 200,
            timeout=timeout,
            what="the mail sink",
        )
    finally:
        api.close()


def kill_process_group(stack: Stack, name: str) -> None:
    """SIGKILL a child and its whole process group: no shutdown, no acknowledgement."""
    stack.processes[name].stop(signal.SIGKILL)


def start_process(stack: Stack, name: str, health_url: str, *, timeout: float = 30.0) -> None:
    stack.processes[name].start()
    eventually(lambda: _answers(health_url), timeout=timeout, what=f"{name} to answer")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def pids(stack: Stack) -> dict[str, int | None]:
    return {
        name: process.process.pid if process.process else None
        for name, process in stack.processes.items()
    }


def query(stack: Stack, database: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Run one query against a service's database, as the private server's superuser."""
    assert stack.postgres is not None

    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(stack.postgres.dsn(database), timeout=5)
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


class Measurements:
    """Figures measured by the tests, grouped by scenario, written out at the session's end."""

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, str] = {}
        self.started = time.monotonic()

    def record(self, scenario: str, name: str, value: Any) -> None:
        self.figures.setdefault(scenario, {})[name] = value

    def dump(self, path: str) -> None:
        Path(path).write_text(
            json.dumps(
                {
                    "figures": self.figures,
                    "outcomes": self.outcomes,
                    "seconds": round(time.monotonic() - self.started, 1),
                },
                indent=2,
                sort_keys=True,
            )
        )
