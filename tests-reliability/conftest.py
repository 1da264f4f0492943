"""The reliability suite: one private native stack, broken on purpose, one thing at a time.

The stack (its own PostgreSQL, Redis, mail sink, services and gateway on free ports) is
started once for the session. Each module breaks one thing and repairs it; before every
test the stack is checked and, if a failed test left something down, healed.

Set RELIABILITY_RESULTS=<path.json> to collect the figures the tests measure (outage
recovery times, delivery delays) and each test's outcome; scripts/reliability_report.py
does that to write docs/reliability.md. Set RELIABILITY_KEEP_LOGS=<dir> to keep the
services' logs, which say why a request failed.
"""

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reliability_support import (  # noqa: E402
    STACK_ENV,
    Api,
    Mailbox,
    Measurements,
    wait_until_healthy,
)

from devstack.stack import Stack, StackConfig  # noqa: E402

RESULTS_ENV = "RELIABILITY_RESULTS"
#: Set to a directory to keep the services' logs (the stack deletes its own on stop).
KEEP_LOGS_ENV = "RELIABILITY_KEEP_LOGS"


_measurements = Measurements()


@pytest.fixture(scope="session")
def measurements() -> Measurements:
    return _measurements


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        previous = _measurements.outcomes.get(report.nodeid)
        if previous in (None, "passed"):
            _measurements.outcomes[report.nodeid] = report.outcome


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get(RESULTS_ENV)
    if path:
        _measurements.dump(path)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    stack = Stack(StackConfig.isolated(extra_env=dict(STACK_ENV)))
    started = time.monotonic()
    stack.start()
    _measurements.record("stack", "start_seconds", round(time.monotonic() - started, 1))
    try:
        yield stack
    finally:
        keep = os.environ.get(KEEP_LOGS_ENV)
        if keep:
            shutil.copytree(stack.logs_dir, keep, dirs_exist_ok=True)
        stack.stop()


@pytest.fixture(autouse=True)
def healthy_stack(stack: Stack) -> None:
    """Every test starts from a whole, ready stack, whatever the previous one did."""
    wait_until_healthy(stack)


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[Api]:
    client = Api(stack.config.gateway_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def mailbox(stack: Stack) -> Iterator[Mailbox]:
    box = Mailbox(stack.config.mailbox_url)
    try:
        yield box
    finally:
        box.close()
