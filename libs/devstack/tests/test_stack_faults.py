"""The native stack as a whole: readiness follows Redis and PostgreSQL, without restarts;
the gateway is the real Traefik, one more process of the stack."""

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.provision import SERVICES
from devstack.stack import Stack, StackConfig


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    stack = Stack(StackConfig.isolated())
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def ready_statuses(stack: Stack) -> dict[str, int]:
    with httpx.Client(base_url=stack.config.gateway_url, timeout=5) as client:
        return {name: client.get(f"/api/v1/{name}/ready").status_code for name in SERVICES}


def wait_for(stack: Stack, status: int, timeout: float = 20) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = ready_statuses(stack)
        if set(statuses.values()) == {status}:
            return statuses
        time.sleep(0.2)
    return statuses


def test_every_service_is_ready(stack: Stack) -> None:
    assert wait_for(stack, 200) == dict.fromkeys(SERVICES, 200)


def test_redis_down_makes_every_service_unready_until_it_returns(stack: Stack) -> None:
    assert stack.redis is not None
    stack.redis.stop()
    try:
        assert wait_for(stack, 503) == dict.fromkeys(SERVICES, 503)
        detail = httpx.get(f"{stack.config.gateway_url}/api/v1/items/ready").json()["detail"]
        assert detail == "Not ready: redis unavailable"
    finally:
        stack.redis.start()
    assert wait_for(stack, 200) == dict.fromkeys(SERVICES, 200)
    assert stack.dead_processes() == []


def test_postgres_down_makes_every_service_unready_until_it_returns(stack: Stack) -> None:
    assert stack.postgres is not None
    stack.postgres.stop()
    try:
        assert wait_for(stack, 503) == dict.fromkeys(SERVICES, 503)
        detail = httpx.get(f"{stack.config.gateway_url}/api/v1/users/ready").json()["detail"]
        assert detail == "Not ready: database unavailable"
    finally:
        stack.postgres.start()
    assert wait_for(stack, 200) == dict.fromkeys(SERVICES, 200)
    assert stack.dead_processes() == []


def test_the_gateway_is_traefik_listening_on_the_gateway_port(stack: Stack) -> None:
    gateway = stack.processes["gateway"]
    assert gateway.process is not None
    assert Path(f"/proc/{gateway.process.pid}/comm").read_text().strip() == "traefik"
    assert f"--entryPoints.web.address=127.0.0.1:{stack.config.gateway_port}" in gateway.argv
    ping = httpx.get(f"{stack.config.gateway_internal_url}/ping", timeout=5)
    assert (ping.status_code, ping.text) == (200, "OK")
    # Its JSON access log goes where the services' logs go.
    httpx.get(f"{stack.config.gateway_url}/api/v1/users/health", timeout=5)
    log_path = stack.logs_dir / "gateway.log"
    deadline = time.monotonic() + 10  # Traefik writes its access log asynchronously
    while '"RequestPath":"/api/v1/users/health"' not in log_path.read_text():
        assert time.monotonic() < deadline, log_path.read_text()[-2000:]
        time.sleep(0.1)


def test_a_crashed_gateway_is_seen_and_restarted(stack: Stack) -> None:
    gateway = stack.processes["gateway"]
    assert gateway.process is not None
    os.kill(gateway.process.pid, signal.SIGKILL)
    gateway.process.wait(10)
    assert stack.dead_processes() == ["gateway"]  # what makes `make dev` stop everything
    stack.restart_process("gateway")
    assert stack.dead_processes() == []
    # Ready means ready: Traefik's own answers are JSON from the moment it is back.
    unknown = httpx.get(f"{stack.config.gateway_url}/no-such-path", timeout=5)
    assert unknown.status_code == 404 and "detail" in unknown.json(), unknown.text
    assert wait_for(stack, 200) == dict.fromkeys(SERVICES, 200)
