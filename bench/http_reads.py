"""Authenticated reads, direct and through the gateway, beside a bare FastAPI endpoint.

`uv run python -m bench.http_reads`. Starts a private native stack and a bare app,
then drives each URL with wrk (one client thread) and prints requests per second,
p50/p99 latency and the ratio to the bare endpoint. Target: the authenticated item
read, direct to the service, at no less than 40% of the bare endpoint's throughput.

Where the time goes (py-spy on the items service under this load): the service process
is CPU-bound at about 1.3 ms per authenticated read, spread over FastAPI's dependency
resolution (about a quarter), SQLAlchemy's ORM and asyncpg (about a third: one query,
no transaction since `ReadSessionDep`), the revocation MGET and the response. The bare
endpoint costs about 0.13 ms. What was cut: a pre-ping round trip per checkout, pool
churn, BEGIN/ROLLBACK for single reads (+45%), repeated signature checks (cached).
"""

import subprocess
import sys
import time
import uuid

import httpx

from bench import wrk
from devstack.ports import free_port
from devstack.stack import REPO_ROOT, Stack, StackConfig

SECONDS, CONNECTIONS = 8, 32
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


def main() -> None:
    stack = Stack(StackConfig.isolated())
    bare_port = free_port()
    bare = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "uvicorn", "bench.bare:app", "--port", str(bare_port),
         "--no-access-log", "--log-level", "warning"],
        cwd=REPO_ROOT,
    )  # fmt: skip
    try:
        stack.start()
        _wait(f"http://127.0.0.1:{bare_port}/bare")
        token, item_id = _seed(stack.config.gateway_url)
        auth = {"Authorization": f"Bearer {token}"}
        direct = stack.config.service_url("items")
        gateway = stack.config.gateway_url
        targets = [
            ("bare FastAPI constant", f"http://127.0.0.1:{bare_port}/bare", {}),
            ("GET item, direct", f"{direct}/api/v1/items/{item_id}", auth),
            ("GET list of 20, direct", f"{direct}/api/v1/items/?limit=20", auth),
            ("GET item, via gateway", f"{gateway}/api/v1/items/{item_id}", auth),
            ("GET list of 20, via gateway", f"{gateway}/api/v1/items/?limit=20", auth),
        ]
        print(f"wrk: 1 thread, {CONNECTIONS} connections, {SECONDS}s per target; 2 cores shared")
        print(
            f"{'target':<30}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'vs bare':>10}{'errors':>8}"
        )
        baseline = None
        for label, url, headers in targets:
            result = wrk.run(url, headers=headers, seconds=SECONDS, connections=CONNECTIONS)
            baseline = baseline or result.requests_per_second
            ratio = result.requests_per_second / baseline
            print(
                f"{label:<30}{result.requests_per_second:>10,.0f}{result.p50_ms:>10.2f}"
                f"{result.p99_ms:>10.2f}{ratio:>10.0%}{result.errors:>8}"
            )
    finally:
        bare.terminate()
        bare.wait()
        stack.stop()


if __name__ == "__main__":
    main()
