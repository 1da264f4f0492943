"""Authenticated reads, direct and through the gateway, beside a bare FastAPI endpoint.

`uv run python -m bench.http_reads`. Starts a private native stack, the bare app and the floor
app, then drives each URL with wrk (one thread, pinned to a core of its own; the server being
measured is pinned to the other) and prints requests per second, p50/p99 latency and the ratios
to the bare endpoint and to the floor (below). Through the gateway (the real Traefik, as in
compose), the service keeps the core it had when read directly and Traefik shares wrk's: on
two cores, that compares the same service with and without the gateway in front. The closing
line gives the ratio of the item read through Traefik to the same read direct (issue 12's
target: 0.8 or more).

Target (issue 4): the authenticated item read, direct, at 40% of the bare endpoint or more.
Not met on this 2-core machine: about 17%. Two reference rows show why it cannot be met here:
- `floor`: the bare app plus only the two round trips that an authenticated read must make
  (Redis MGET for revocation, PostgreSQL `SELECT 1`) with the same clients, and nothing else:
  about 30% of bare;
- `service /health`: a constant route inside a service, that is the platform's own work on
  every request (request id, security headers, access log, body limit, error mapping): about
  46%. An item read adds the token, the revocation check, the query and the model to it.

What the item read lost on the way from 690 to about 1,900 req/s (p99 from 130 ms to 24 ms):
the ORM (a Core SELECT compiled once, on a small asyncpg pool with no reset round trip), one
MGET per request (concurrent checks share one), full garbage collections over the startup heap
(frozen after startup: they stalled every request in flight for ~80 ms), thread-pool hops for
plain `def` dependencies, a second validation of the response model. Lists: 370 -> 940 req/s.
Then (issue 24): Starlette's error middleware, FastAPI's telemetry, body-limit and exit-stack
layers and our separate body limit folded into `RequestContextMiddleware` (one layer of ours,
then the exception handlers, then the routes: `servicekit.app.ServiceApp`), the bearer scheme
and the token check one dependency, and a list's total read beside its page (one round trip
fewer). The server itself is measured by `bench.servers` (uvicorn against granian).
"""

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import httpx

from bench import cpus, wrk
from devstack.ports import free_port
from devstack.stack import REPO_ROOT, Stack, StackConfig

SECONDS, WARMUP, CONNECTIONS = 8, 2, 32
FLOOR_LABEL = "floor: + MGET + SELECT 1"
PASSWORD = "correct horse battery"


def _wait(url: str) -> None:
    for _ in range(100):
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def _seed(gateway: str) -> tuple[str, str]:
    """A user with 25 items; returns its access token and one item id."""
    with httpx.Client(base_url=gateway, timeout=10) as client:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        token = client.post(
            "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        ids = [
            client.post(
                "/api/v1/items/", headers=headers, json={"title": f"Item {n}", "tags": ["bench"]}
            ).json()["id"]
            for n in range(25)
        ]
        return token, ids[0]


@dataclass(frozen=True)
class Target:
    label: str
    url: str
    headers: dict[str, str]
    #: Which process runs on which core while this target is measured.
    placement: dict[int, int | None]


def _serve(app: str, port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Served as the services are: uvicorn, uvloop and httptools, no access log."""
    argv = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--no-access-log",
            "--log-level", "warning"]  # fmt: skip
    return subprocess.Popen(argv, cwd=REPO_ROOT, env=env)  # noqa: S603 - fixed argv


def _pid(stack: Stack, name: str) -> int:
    process = stack.processes[name].process
    assert process is not None
    return process.pid


def main() -> None:
    # Traefik is measured on one core: a Go runtime sized for one (it sized itself for every
    # core at start-up, before the pinning) does not switch between threads on that core.
    go_env = {"GOMAXPROCS": "1"} if cpus.LOAD_CPU is not None else {}
    stack = Stack(StackConfig.isolated(extra_env=go_env, prometheus=False))
    bare_port, floor_port = free_port(), free_port()
    helpers: list[subprocess.Popen[bytes]] = []
    try:
        stack.start()
        floor_env = {
            **os.environ,
            "FLOOR_REDIS_URL": stack.redis_url,
            "FLOOR_POSTGRES_DSN": stack.database_url("items", scheme="postgresql"),
        }
        bare = _serve("bench.bare:app", bare_port)
        floor = _serve("bench.floor:app", floor_port, floor_env)
        helpers += [bare, floor]
        _wait(f"http://127.0.0.1:{bare_port}/bare")
        _wait(f"http://127.0.0.1:{floor_port}/floor")
        token, item_id = _seed(stack.config.gateway_url)
        auth = {"Authorization": f"Bearer {token}"}
        local, direct = "http://127.0.0.1", stack.config.service_url("items")
        gateway = stack.config.gateway_url
        items, traefik = _pid(stack, "items"), _pid(stack, "gateway")
        server = cpus.SERVER_CPU
        alone, behind = {items: server}, {items: server, traefik: cpus.LOAD_CPU}
        targets = [
            Target("bare FastAPI constant", f"{local}:{bare_port}/bare", {}, {bare.pid: server}),
            Target(FLOOR_LABEL, f"{local}:{floor_port}/floor", {},
                   {floor.pid: server}),
            Target("service /health, direct", f"{direct}/api/v1/items/health", {}, alone),
            Target("GET item, direct", f"{direct}/api/v1/items/{item_id}", auth, alone),
            Target("GET list of 20, direct", f"{direct}/api/v1/items/?limit=20", auth, alone),
            Target("GET item, via Traefik", f"{gateway}/api/v1/items/{item_id}", auth, behind),
            Target("GET list of 20, via Traefik", f"{gateway}/api/v1/items/?limit=20", auth,
                   behind),
        ]  # fmt: skip
        print(
            f"wrk: 1 thread, {CONNECTIONS} connections, {SECONDS}s per target after {WARMUP}s of "
            f"warm-up; server on CPU {cpus.SERVER_CPU}, wrk (and Traefik, for the rows through "
            f"it) on CPU {cpus.LOAD_CPU}, PostgreSQL and Redis unpinned"
        )
        columns = ("req/s", "p50 ms", "p99 ms", "vs bare", "vs floor")
        print(f"{'target':<30}" + "".join(f"{name:>10}" for name in columns) + f"{'errors':>8}")
        baseline = 0.0
        rates: dict[str, float] = {}
        for target in targets:
            with cpus.pinned(target.placement):
                wrk.run(target.url, headers=target.headers, seconds=WARMUP,
                        connections=CONNECTIONS, cpu=cpus.LOAD_CPU)  # fmt: skip
                result = wrk.run(target.url, headers=target.headers, seconds=SECONDS,
                                 connections=CONNECTIONS, cpu=cpus.LOAD_CPU)  # fmt: skip
            baseline = baseline or result.requests_per_second
            rates[target.label] = result.requests_per_second
            ratio = result.requests_per_second / baseline
            floor_rate = rates.get(FLOOR_LABEL)
            to_floor = f"{result.requests_per_second / floor_rate:>10.2f}" if floor_rate else ""
            print(
                f"{target.label:<30}{result.requests_per_second:>10,.0f}{result.p50_ms:>10.2f}"
                f"{result.p99_ms:>10.2f}{ratio:>10.0%}{to_floor:>10}{result.errors:>8}"
            )
        through = rates["GET item, via Traefik"] / rates["GET item, direct"]
        print(f"GET item through Traefik / direct: {through:.2f} (target: 0.80 or more)")
    finally:
        for helper in helpers:
            helper.terminate()
            helper.wait()
        stack.stop()


if __name__ == "__main__":
    main()
