"""What the journeys share besides fixtures: accounts, the mailbox, waiting for events.

Tests import from here (`from e2e import User`); conftest.py puts this directory on the path.
"""

import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

PASSWORD = "correct horse battery staple"
ADMIN_EMAIL = os.environ.get("E2E_ADMIN_EMAIL", "admin@example.com")
ADMIN_PASSWORD = os.environ.get("E2E_ADMIN_PASSWORD", "admin-password-dev-only")
SERVICES = ("auth", "users", "items", "notifications")


#: Set by `make e2e-compose`: the gateway trusts the connection the suite comes through (the
#: published port's proxy, GATEWAY_TRUSTED_IPS) to name the client in X-Forwarded-For, as a
#: load balancer in front of it would. Each client then names an address of its own.
FORWARDED_FOR = os.environ.get("E2E_FORWARDED_FOR") == "1"


def from_address(address: str | None) -> dict[str, Any]:
    """httpx.Client keyword arguments that make its requests come from `address` (None: this
    host's), for any client class built on httpx.Client (an OAuth library's too).

    Natively it binds that address (a loopback alias); behind the trusted proxy it appends
    it to X-Forwarded-For, as the proxy would append the address of the client it serves.
    """
    if address is not None and FORWARDED_FOR:

        def forward(request: httpx.Request) -> None:
            claimed = request.headers.get("X-Forwarded-For")
            request.headers["X-Forwarded-For"] = f"{claimed}, {address}" if claimed else address

        return {"event_hooks": {"request": [forward]}}
    return {"transport": httpx.HTTPTransport(local_address=address)}


def gateway_client(base_url: str, address: str | None) -> httpx.Client:
    """An HTTP client for the gateway whose requests come from `address` (see from_address)."""
    return httpx.Client(base_url=base_url, timeout=10.0, **from_address(address))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unique_email(prefix: str = "e2e") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


@dataclass
class User:
    """An account and the tokens of its latest login."""

    email: str
    password: str
    id: str
    access_token: str
    refresh_token: str

    @classmethod
    def from_login(cls, email: str, password: str, id: str, tokens: dict[str, Any]) -> "User":
        return cls(email, password, id, tokens["access_token"], tokens["refresh_token"])

    @property
    def auth(self) -> dict[str, str]:
        """Headers that authenticate as this user."""
        return bearer(self.access_token)


T = TypeVar("T")


def eventually(check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.1) -> T:
    """Events travel asynchronously: poll until `check` returns something truthy.

    Returns the last result, truthy or not, so that the caller's assert shows what was seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


class Mailbox:
    """The mail sink (Mailpit in compose, the native sink otherwise), read through Mailpit's API."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=10.0)

    def messages_to(self, address: str) -> list[dict[str, Any]]:
        response = self.client.get("/api/v1/search", params={"query": f"to:{address}"})
        response.raise_for_status()
        return list(response.json()["messages"])

    def wait_for(
        self, address: str, subject_contains: str, *, count: int = 1
    ) -> list[dict[str, Any]]:
        """The mails to `address` with that text in their subject, newest first, once `count`
        of them have arrived."""

        def arrived() -> list[dict[str, Any]]:
            found = [m for m in self.messages_to(address) if subject_contains in m["Subject"]]
            return found if len(found) >= count else []

        found = eventually(arrived, timeout=15)
        assert found, f"no mail about {subject_contains!r} reached {address}"
        return found

    def text(self, message: dict[str, Any]) -> str:
        response = self.client.get(f"/api/v1/message/{message['ID']}")
        response.raise_for_status()
        return str(response.json()["Text"])

    def headers(self, message: dict[str, Any]) -> dict[str, list[str]]:
        """The mail's headers, names lower-cased."""
        response = self.client.get(f"/api/v1/message/{message['ID']}/headers")
        response.raise_for_status()
        return {name.lower(): values for name, values in response.json().items()}

    def token_in(self, message: dict[str, Any]) -> str:
        """The `token=` of the first link in a mail."""
        text = self.text(message)
        match = re.search(r"token=([A-Za-z0-9_\-]+)", text)
        assert match, text
        return match[1]

    def link_in(self, message: dict[str, Any], containing: str) -> str:
        """The first URL in the mail's text that contains `containing`."""
        text = self.text(message)
        match = re.search(rf"https?://\S*{re.escape(containing)}\S*", text)
        assert match, text
        return match[0]
