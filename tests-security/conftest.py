"""The security suite talks only to the gateway, as a hostile client would.

When GATEWAY_URL is unset, a private native stack (its own PostgreSQL, Redis, ports and
temporary directory) is started for the session with the gateway's rate limit and the
login throttle lifted: the fuzzer sends thousands of requests from one address, and a
429 there would hide every answer behind it. The stack signs tokens with a key made here,
so the JWT tests can forge tokens that pass the signature check and fail on a claim.
Point GATEWAY_URL at another stack only if it has those limits lifted too (`STACK_ENV`);
the tests that need the signing key are then skipped.
"""

import base64
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from servicekit.keys import PrivateKey, generate_private_key, load_private_key, private_key_to_pem
from servicekit_testing import TEST_PASSWORD as PASSWORD

#: The key the stack signs with: AUTH_PRIVATE_KEY when set (a stack started elsewhere with
#: it), otherwise a new one given to the stack started here.
SIGNING_KEY = (
    load_private_key(os.environ["AUTH_PRIVATE_KEY"].encode())
    if os.environ.get("AUTH_PRIVATE_KEY")
    else generate_private_key("RS256")
)

STACK_ENV = {
    "AUTH_PRIVATE_KEY": private_key_to_pem(SIGNING_KEY).decode(),
    "GATEWAY_AUTH_RATE_AVERAGE": "100000",
    "GATEWAY_AUTH_RATE_BURST": "100000",
    "LOGIN_MAX_FAILURES_PER_ADDRESS": "1000000",
    "LOGIN_MAX_FAILURES_PER_ACCOUNT": "1000000",
}

ADMIN_EMAIL = os.environ.get("FIRST_ADMIN_EMAIL", "admin@example.com")
ADMIN_PASSWORD = os.environ.get("FIRST_ADMIN_PASSWORD", "admin-password-dev-only")


@pytest.fixture(scope="session")
def gateway_url() -> Iterator[str]:
    if gateway := os.environ.get("GATEWAY_URL"):
        yield gateway.rstrip("/")
        return
    from devstack.stack import Stack, StackConfig

    stack = Stack(StackConfig.isolated(extra_env=STACK_ENV))
    stack.start()
    try:
        yield stack.config.gateway_url
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def signing_key() -> PrivateKey:
    """The private key the stack signs with, to forge tokens that fail only on their claims."""
    if os.environ.get("GATEWAY_URL") and not os.environ.get("AUTH_PRIVATE_KEY"):
        pytest.skip("forging tokens needs the stack's signing key: set AUTH_PRIVATE_KEY")
    return SIGNING_KEY


@pytest.fixture(scope="session")
def issuer(gateway_url: str) -> str:
    return os.environ.get("AUTH_ISSUER", f"{gateway_url}/api/v1/auth")


@pytest.fixture(scope="session")
def api(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=30.0) as client:
        yield client


@dataclass(frozen=True)
class Login:
    """A logged-in account: its tokens and the ids inside them."""

    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def claims(self) -> dict[str, object]:
        payload = self.access_token.split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))

    @property
    def user_id(self) -> str:
        return str(self.claims["sub"])

    @property
    def session_id(self) -> str:
        return str(self.claims["sid"])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def log_in(api: httpx.Client, email: str, password: str) -> Login:
    response = api.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    tokens = response.json()
    return Login(email, password, tokens["access_token"], tokens["refresh_token"])


def new_user(api: httpx.Client) -> Login:
    """A fresh account, registered and logged in through the gateway."""
    email = f"sec-{uuid.uuid4().hex[:12]}@example.com"
    registered = api.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    return log_in(api, email, PASSWORD)


@pytest.fixture(scope="session")
def make_user(api: httpx.Client) -> Callable[[], Login]:
    """Registers and logs in a fresh account each call (for calls that spend their caller)."""
    return lambda: new_user(api)


@pytest.fixture(scope="session")
def user(api: httpx.Client) -> Login:
    """One account shared by the read-mostly tests; nothing here revokes its tokens."""
    return new_user(api)


@pytest.fixture(scope="session")
def admin(api: httpx.Client) -> Login:
    return log_in(api, ADMIN_EMAIL, ADMIN_PASSWORD)
