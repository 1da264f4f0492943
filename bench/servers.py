"""The ASGI server under the services: uvicorn (httptools, uvloop) against granian (a Rust HTTP
core), side by side in one run.

`uv run python -m bench.servers`. Starts a private native stack (its items service on uvicorn,
as served today), a second items process on granian with the same environment, and the bare
endpoint on each server; then drives each with wrk exactly as `bench.http_reads` does (server
on one core, wrk on the other) and prints requests per second, p50/p99 and the ratio of granian
to uvicorn for the same target. Granian runs one worker process in its single-threaded runtime,
which is what one core per service process asks for.

Measured so far (issue 24, a machine loaded by other work): granian served the bare endpoint
at 1.6x uvicorn, the authenticated item read at 2.3x and the list of 20 at 2.1x (under heavier
load, in earlier rounds: 2.9-3.1x, 3.3-8x and 4-6x).
The services are not switched yet: see README's benchmark section for what a switch needs.
"""

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from bench import cpus, wrk
from bench.http_reads import CONNECTIONS, SECONDS, WARMUP, _seed, _wait
from devstack.ports import free_port
from devstack.stack import REPO_ROOT, Stack, StackConfig


def _granian(
    app: str, port: int, *, cwd: Path, env: Mapping[str, str] | None, log: Path
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--loop", "uvloop",
            "--workers", "1", "--runtime-mode", "st", "--port", str(port),
            "--log-level", "warning", app]  # fmt: skip
    with log.open("ab") as output:
        return subprocess.Popen(  # noqa: S603 - fixed argv
            argv, cwd=cwd, env=None if env is None else dict(env), stdout=output, stderr=output
        )


def _uvicorn(app: str, port: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--no-access-log",
            "--log-level", "warning"]  # fmt: skip
    return subprocess.Popen(argv, cwd=REPO_ROOT)  # noqa: S603 - fixed argv


def _process_tree(process: subprocess.Popen[bytes]) -> list[int]:
    """Granian serves from a worker process of its own: pin it with its parent."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    return [process.pid, *map(int, children)]


def main() -> None:
    stack = Stack(StackConfig.isolated())
    helpers: list[subprocess.Popen[bytes]] = []
    try:
        stack.start()
        token, item_id = _seed(stack.config.gateway_url)
        auth = {"Authorization": f"Bearer {token}"}
        bare_uvicorn, bare_granian, items_granian = free_port(), free_port(), free_port()
        helpers.append(_uvicorn("bench.bare:app", bare_uvicorn))
        helpers.append(
            _granian(
                "bench.bare:app",
                bare_granian,
                cwd=REPO_ROOT,
                env=None,
                log=stack.logs_dir / "bare-granian.log",
            )  # fmt: skip
        )
        helpers.append(
            _granian("items.main:app", items_granian, cwd=REPO_ROOT / "services" / "items",
                     env=stack.service_env("items"), log=stack.logs_dir / "items-granian.log")
        )  # fmt: skip
        local = "http://127.0.0.1"
        _wait(f"{local}:{bare_uvicorn}/bare")
        _wait(f"{local}:{bare_granian}/bare")
        _wait(f"{local}:{items_granian}/api/v1/items/health")
        items = stack.processes["items"].process
        assert items is not None
        on_uvicorn = stack.config.service_url("items")
        on_granian = f"{local}:{items_granian}"
        uvicorn_pids = {"bare": [helpers[0].pid], "items": [items.pid]}
        granian_pids = {"bare": _process_tree(helpers[1]), "items": _process_tree(helpers[2])}
        targets = [
            ("bare FastAPI constant", "bare", f"{local}:{bare_uvicorn}/bare",
             f"{local}:{bare_granian}/bare", {}),
            ("GET item, direct", "items", f"{on_uvicorn}/api/v1/items/{item_id}",
             f"{on_granian}/api/v1/items/{item_id}", auth),
            ("GET list of 20, direct", "items", f"{on_uvicorn}/api/v1/items/?limit=20",
             f"{on_granian}/api/v1/items/?limit=20", auth),
        ]  # fmt: skip
        print(
            f"wrk: 1 thread, {CONNECTIONS} connections, {SECONDS}s per target after {WARMUP}s "
            f"of warm-up; server on CPU {cpus.SERVER_CPU}, wrk on CPU {cpus.LOAD_CPU}"
        )
        print(f"{'target':<24}{'server':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}")
        for label, kind, uvicorn_url, granian_url, headers in targets:
            rates = []
            for server, url, pids in (
                ("uvicorn", uvicorn_url, uvicorn_pids[kind]),
                ("granian", granian_url, granian_pids[kind]),
            ):
                with cpus.pinned(dict.fromkeys(pids, cpus.SERVER_CPU)):
                    wrk.run(url, headers=headers, seconds=WARMUP, connections=CONNECTIONS,
                            cpu=cpus.LOAD_CPU)  # fmt: skip
                    result = wrk.run(url, headers=headers, seconds=SECONDS,
                                     connections=CONNECTIONS, cpu=cpus.LOAD_CPU)  # fmt: skip
                rates.append(result.requests_per_second)
                print(
                    f"{label:<24}{server:>9}{result.requests_per_second:>9,.0f}"
                    f"{result.p50_ms:>9.2f}{result.p99_ms:>9.2f}{rates[-1] / rates[0]:>8.2f}"
                    f"{'' if not result.errors else f'  errors: {result.errors}'}",
                    flush=True,
                )
    finally:
        for helper in helpers:
            helper.terminate()
            helper.wait()
        stack.stop()


if __name__ == "__main__":
    main()
