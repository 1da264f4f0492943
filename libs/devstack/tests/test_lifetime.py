"""Nothing `make dev` starts outlives it, however it is stopped.

Each test runs `python -m devstack` as `make dev` does (on free ports, with the module's private
PostgreSQL and Redis as "the machine's servers"), notes every process under it and every
port they listen on, stops it one way, and then finds none of those processes and every port
free. A SIGKILL leaves devstack no time to clean up: there the children's parent-death signal
does the work, including for the PostgreSQL and Redis it runs itself.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.ports import free_port, port_is_listening
from devstack.prometheus import prometheus_executable
from devstack.servers import PostgresServer, RedisServer, _process_alive

STARTUP_TIMEOUT = 180.0
GONE_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PostgresServer, RedisServer]]:
    with PostgresServer() as postgres, RedisServer() as redis:
        yield postgres, redis


#: The services' metrics ports, and Prometheus's when its binary is installed.
MONITORING_PORTS = 4 + (prometheus_executable() is not None)


def children(pid: int) -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, todo = children(pid), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def listening_ports(pids: set[int]) -> set[int]:
    """TCP ports the processes listen on: their socket inodes in /proc/net/tcp(6)."""
    inodes = set()
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        inodes |= {link[8:-1] for link in links if link.startswith("socket:[")}
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@dataclass
class Running:
    """A `make dev` under test: its top process, what runs under it, what they listen on."""

    process: subprocess.Popen[bytes]
    devstack_pid: int
    pids: set[int]
    ports: set[int]
    log: Path

    def survivors(self) -> set[int]:
        return {pid for pid in self.pids | {self.devstack_pid} if _process_alive(pid)}

    def taken_ports(self) -> set[int]:
        return {port for port in self.ports if port_is_listening("127.0.0.1", port)}


def cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def launch(argv_prefix: list[str], *, postgres: str, redis: str, reload: bool = False) -> Running:
    state_dir = Path(tempfile.mkdtemp(prefix="devstack-lifetime-"))
    os.chmod(state_dir, 0o755)  # noqa: S103 - the postgres OS user enters it (own server)
    log = state_dir / "make-dev.log"
    argv = [
        *argv_prefix,
        *("-m", "devstack", "--free-ports", "--state-dir", str(state_dir)),
        *("--postgres", postgres, "--redis", redis),
        *([] if reload else ["--no-reload"]),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own command line
            argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while "Press Ctrl-C to stop." not in log.read_text(errors="replace"):
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)
    pids = descendants(process.pid)
    while reload:  # and each service's next process, warming up (devstack.standby)
        standbys = [pid for pid in pids if b"devstack.standby" in cmdline(pid)]
        if len(standbys) == 4:
            break
        assert time.monotonic() < deadline, f"standbys: {standbys}"
        time.sleep(0.2)
        pids = descendants(process.pid)
    devstack_pid = next(pid for pid in pids | {process.pid} if b"devstack" in cmdline(pid))
    return Running(process, devstack_pid, pids, listening_ports(pids), log)


def wait_until_all_gone(running: Running) -> None:
    deadline = time.monotonic() + GONE_TIMEOUT
    while running.survivors() or running.taken_ports():
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    try:
        assert running.survivors() == set(), running.log.read_text(errors="replace")[-3000:]
        assert running.taken_ports() == set()
    finally:
        for pid in running.survivors():  # never leave a failed test's processes behind
            os.kill(pid, signal.SIGKILL)
        running.process.wait(GONE_TIMEOUT)
        shutil.rmtree(running.log.parent, ignore_errors=True)


def uv_run() -> list[str]:
    """`make dev`'s own launcher: uv forwards signals to devstack (a second one, often)."""
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is not on PATH (make puts .dev/bin first)"
    return [uv, "run", "--no-sync", "python"]


def stop_group(signum: signal.Signals) -> Callable[[Running], None]:
    """What a terminal's Ctrl-C does (SIGINT) or `kill -TERM -PGID`: every process of the group."""
    return lambda running: os.killpg(running.process.pid, signum)


def two_terms(running: Running) -> None:
    """A second (and third) TERM while the first one's clean-up runs."""
    for pause in (0.0, 0.1, 0.4):
        time.sleep(pause)
        os.kill(running.devstack_pid, signal.SIGTERM)


@pytest.mark.parametrize(
    ("stop", "launcher"),
    [
        (stop_group(signal.SIGTERM), uv_run),
        (stop_group(signal.SIGINT), uv_run),
        (two_terms, lambda: [sys.executable]),
    ],
    ids=["term-to-the-group", "ctrl-c", "two-terms"],
)
def test_stopping_make_dev_leaves_no_process_and_frees_every_port(
    servers: tuple[PostgresServer, RedisServer],
    stop: Callable[[Running], None],
    launcher: Callable[[], list[str]],
) -> None:
    postgres, redis = servers
    running = launch(launcher(), postgres=postgres.admin_dsn, redis=redis.url)
    # mail sink, four services, Traefik; ports: 4 services, 2 of the gateway, 2 of the mail sink,
    # the services' 4 metrics ports and Prometheus (when installed)
    assert len(running.pids - {running.devstack_pid}) >= 6
    assert len(running.ports) == 8 + MONITORING_PORTS
    stop(running)
    wait_until_all_gone(running)
    assert postgres.is_running() and redis.is_running()  # the machine's servers are left alone


def test_sigkill_of_devstack_takes_every_child_with_it_own_servers_included() -> None:
    nobody = f"127.0.0.1:{free_port()}"  # no server there: devstack runs its own
    running = launch(
        [sys.executable],
        postgres=f"postgresql://postgres@{nobody}/postgres",
        redis=f"redis://{nobody}/0",
        reload=True,
    )
    commands = {Path(f"/proc/{pid}/comm").read_text().strip() for pid in running.pids}
    assert {"postgres", "redis-server", "traefik"} <= commands
    assert len(running.ports) == 10 + MONITORING_PORTS  # and its own PostgreSQL and Redis
    os.kill(running.devstack_pid, signal.SIGKILL)
    wait_until_all_gone(running)
