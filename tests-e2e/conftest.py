"""The end-to-end suite talks only to GATEWAY_URL and MAILBOX_URL.

When they are unset, the pytest process that runs the session (the xdist controller, or
the only process without xdist) starts a private native stack: its own PostgreSQL, Redis,
free ports and temporary directory. It then exports GATEWAY_URL and MAILBOX_URL, so that
xdist workers, started afterwards, inherit them and share that one stack; it stops the
stack when the session ends. Point both variables at `docker compose up` to run the same
suite against containers.

Every test brings its own accounts (`new_user`, `make_user`): tests share nothing, so they
pass in any order and in parallel (`pytest tests-e2e -n 2`).
"""

import ipaddress
import os
import random
import re
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

# The journeys import their shared helpers from e2e.py, beside this file.
sys.path.insert(0, str(Path(__file__).parent))

from e2e import (  # noqa: E402
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    FORWARDED_FOR,
    PASSWORD,
    Mailbox,
    User,
    bearer,
    eventually,
    gateway_client,
    unique_email,
)

LogIn = Callable[[str, str], dict[str, Any]]
# containers/: faults against the compose stack's containers, run by `make e2e-compose` only.
collect_ignore = [] if os.environ.get("E2E_COMPOSE_PROJECT") else ["containers"]
REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "test-artifacts"

# ---- the stack: started once per session, by the process that runs the session -----------

_stack_key = pytest.StashKey[Any]()


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if _is_xdist_worker(config) or config.option.collectonly:
        return
    if os.environ.get("GATEWAY_URL") and os.environ.get("MAILBOX_URL"):
        return
    from devstack.stack import Stack, StackConfig

    stack = Stack(StackConfig.isolated())
    stack.start()  # on failure it stops what it started, and says why
    config.stash[_stack_key] = stack
    # xdist starts its workers after this hook (its own runs last): they inherit these.
    os.environ["GATEWAY_URL"] = stack.config.gateway_url
    os.environ["MAILBOX_URL"] = stack.config.mailbox_url
    # What only an operator reaches (tests-e2e/test_observability.py).
    os.environ["PROMETHEUS_URL"] = stack.config.prometheus_url
    os.environ["STACK_LOGS_DIR"] = str(stack.logs_dir)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stack = session.config.stash.get(_stack_key, None)
    if stack is None:
        return
    if exitstatus != 0 and stack.logs_dir.exists():
        # The stack's directory goes with it; keep the services' logs for whoever reads the failure.
        shutil.copytree(stack.logs_dir, ARTIFACTS / "stack-logs", dirs_exist_ok=True)
    stack.stop()
    del os.environ["GATEWAY_URL"], os.environ["MAILBOX_URL"]
    del os.environ["PROMETHEUS_URL"], os.environ["STACK_LOGS_DIR"]


@pytest.fixture(scope="session")
def gateway_url() -> str:
    url = os.environ.get("GATEWAY_URL")
    assert url, "GATEWAY_URL is unset: run `pytest tests-e2e`, which starts a stack"
    return url.rstrip("/")


@pytest.fixture(scope="session")
def mailbox_url() -> str:
    url = os.environ.get("MAILBOX_URL")
    assert url, "MAILBOX_URL is unset: run `pytest tests-e2e`, which starts a stack"
    return url.rstrip("/")


# ---- clients and accounts -----------------------------------------------------------------


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(scope="session")
def loopback_aliases(gateway_url: str) -> bool:
    """Whether clients can connect to the gateway from any 127.x.y.z (Linux routes all of
    127.0.0.0/8 to `lo`; other systems may have 127.0.0.1 alone)."""
    if not _is_loopback(gateway_url):
        return False
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.2", 0))
        except OSError:
            return False
    return True


@pytest.fixture(scope="session")
def new_client_address(loopback_aliases: bool) -> Callable[[], str | None]:
    """`new_client_address()`: an address no other client of this run uses, or None.

    The gateway's rate limit and the auth service's failed-login throttle count per client
    address. Tests that shared one would spend a common quota in parallel and, through the
    throttle's 15-minute memory, across runs. Behind compose's trusted proxy, an address of
    198.18.0.0/15 (set aside for tests) named in X-Forwarded-For; natively a loopback alias;
    None: the system's choice (127.0.0.1).
    """

    def new_client_address() -> str | None:
        octets = [random.randint(1, 254) for _ in range(3)]
        if FORWARDED_FOR:
            return "198.{}.{}.{}".format(18 + octets[0] % 2, *octets[1:])
        if not loopback_aliases:
            return None
        return "127.{}.{}.{}".format(*octets)

    return new_client_address


@pytest.fixture
def client_address(new_client_address: Callable[[], str | None]) -> str | None:
    """The address this test's requests come from: one of its own where the host allows it."""
    return new_client_address()


@pytest.fixture
def api(gateway_url: str, client_address: str | None) -> Iterator[httpx.Client]:
    """An HTTP client for the gateway, the only door into the system."""
    with gateway_client(gateway_url, client_address) as client:
        yield client


@pytest.fixture
def fresh_email() -> str:
    """An address no account uses yet."""
    return unique_email()


@pytest.fixture
def log_in(api: httpx.Client) -> LogIn:
    """`log_in(email, password)`: a new token pair, asked for as Swagger's Authorize does."""

    def log_in(email: str, password: str) -> dict[str, Any]:
        response = api.post("/api/v1/auth/token", data={"username": email, "password": password})
        assert response.status_code == 200, response.text
        return dict(response.json())

    return log_in


@pytest.fixture
def make_user(api: httpx.Client, log_in: LogIn) -> Callable[..., User]:
    """`make_user()`: a fresh account, registered and logged in."""

    def make_user(*, password: str = PASSWORD, full_name: str | None = None) -> User:
        email = unique_email()
        registered = api.post(
            "/api/v1/auth/register",
            json={"email": email, "password": password, "full_name": full_name},
        )
        assert registered.status_code == 201, registered.text
        tokens = log_in(email, password)
        return User.from_login(email, password, registered.json()["id"], tokens)

    return make_user


@pytest.fixture
def new_user(make_user: Callable[..., User]) -> User:
    """A fresh account per test: tests never share users, so any order works."""
    return make_user()


@pytest.fixture
def other_user(make_user: Callable[..., User]) -> User:
    """A second fresh account, for what one user must not see of another."""
    return make_user()


@pytest.fixture
def admin(api: httpx.Client, log_in: LogIn) -> User:
    """The administrator the auth service creates from its settings (FIRST_ADMIN_*)."""
    tokens = log_in(ADMIN_EMAIL, ADMIN_PASSWORD)
    me = api.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200, me.text
    assert "admin" in me.json()["roles"], f"{ADMIN_EMAIL} is no admin: {me.text}"
    return User.from_login(ADMIN_EMAIL, ADMIN_PASSWORD, me.json()["id"], tokens)


@pytest.fixture
def mailbox(mailbox_url: str) -> Iterator[Mailbox]:
    """The mails the system sent, as Mailpit's API shows them."""
    box = Mailbox(mailbox_url)
    yield box
    box.client.close()


@pytest.fixture(name="eventually")
def eventually_fixture() -> Callable[..., Any]:
    """`eventually(check)`: poll until `check` returns something truthy (10 s at most)."""
    return eventually


# ---- a real browser -----------------------------------------------------------------------

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (which must never download one).

    Per module: while Playwright's sync API runs, its event loop is the thread's running
    loop, and `asyncio.run` elsewhere in the same process would refuse to start.
    """
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("no `chromium` on PATH: apt-get install -y chromium (make test does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser page (its own cookies and storage); a screenshot is kept on failure."""
    context = browser.new_context()
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    report = request.node.stash.get(_call_report_key, None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()


_call_report_key = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Lets the `page` fixture see, at teardown, whether the test itself failed.
    report = yield
    if report.when == "call":
        item.stash[_call_report_key] = report
    return report
