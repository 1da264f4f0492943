"""The end-to-end suite talks only to GATEWAY_URL and MAILBOX_URL.

When they are unset, a private native stack (its own PostgreSQL, Redis, ports and
temporary directory) is started for the session and stopped afterwards; point
them at `docker compose up` to run the same suite against containers.
"""

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from servicekit.testing import TEST_PASSWORD as PASSWORD


@pytest.fixture(scope="session")
def endpoints() -> Iterator[dict[str, str]]:
    gateway, mailbox = os.environ.get("GATEWAY_URL"), os.environ.get("MAILBOX_URL")
    if gateway and mailbox:
        yield {"gateway": gateway.rstrip("/"), "mailbox": mailbox.rstrip("/")}
        return
    from devstack.stack import Stack, StackConfig

    stack = Stack(StackConfig.isolated())
    stack.start()
    try:
        yield {"gateway": stack.config.gateway_url, "mailbox": stack.config.mailbox_url}
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def gateway_url(endpoints: dict[str, str]) -> str:
    return endpoints["gateway"]


@pytest.fixture(scope="session")
def mailbox_url(endpoints: dict[str, str]) -> str:
    return endpoints["mailbox"]


@pytest.fixture
def api(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=10.0) as client:
        yield client


@pytest.fixture
def new_user(api: httpx.Client) -> dict[str, Any]:
    """A fresh account per test, logged in: tests never share users, so any order works."""
    email = f"e2e-{uuid.uuid4().hex[:12]}@example.com"
    registered = api.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    tokens = api.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    return {"email": email, "account": registered.json(), **tokens.json()}


T = TypeVar("T")


def _eventually(check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.1) -> T:
    """Events travel asynchronously: poll until `check` returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


@pytest.fixture
def eventually() -> Callable[..., Any]:
    return _eventually


class Mailbox:
    """The mail sink (Mailpit natively or in compose), read through Mailpit's API."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=10.0)

    def messages_to(self, address: str) -> list[dict[str, Any]]:
        response = self.client.get("/api/v1/search", params={"query": f"to:{address}"})
        response.raise_for_status()
        return list(response.json()["messages"])

    def wait_for(self, address: str, subject_contains: str, *, count: int = 1) -> list[dict]:
        def arrived() -> list[dict[str, Any]]:
            found = [m for m in self.messages_to(address) if subject_contains in m["Subject"]]
            return found if len(found) >= count else []

        found = _eventually(arrived, timeout=15)
        assert found, f"no mail about {subject_contains!r} reached {address}"
        return found

    def text(self, message: dict[str, Any]) -> str:
        response = self.client.get(f"/api/v1/message/{message['ID']}")
        response.raise_for_status()
        return str(response.json()["Text"])

    def token_in(self, message: dict[str, Any]) -> str:
        """The `token=` of the first link in a mail."""
        text = self.text(message)
        match = re.search(r"token=([A-Za-z0-9_\-]+)", text)
        assert match, text
        return match[1]


@pytest.fixture
def mailbox(mailbox_url: str) -> Iterator[Mailbox]:
    box = Mailbox(mailbox_url)
    yield box
    box.client.close()
