"""Private, throwaway PostgreSQL and Redis servers for tests and fault injection.

The shared PostgreSQL and Redis on 5432/6379 must never be stopped, yet resilience tests
need real outages. These classes start a private server on its own port with its own data
directory, and let a test stop it and start it again on the SAME port, so clients that
hold the address see exactly what a production outage looks like.

    with PostgresServer() as pg:          # random free port, temp data dir
        pool = await asyncpg.create_pool(pg.admin_dsn)
        pg.stop()                         # outage: connections now fail
        pg.start()                        # recovery: same port, same data

The servers run as our children (PostgreSQL too, not daemonized) and stop when the process
that started them dies, however it dies (devstack.lifetime). make dev runs the same classes
as its own servers where the machine's cannot be used, data kept (devstack.embedded).

Both classes are synchronous (they run short subprocesses). From async code that must
keep its event loop responsive, call them via `asyncio.to_thread(...)`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Self

from devstack import lifetime
from devstack.ports import ensure_port_free, free_port, port_is_listening

__all__ = ["PostgresServer", "RedisServer", "ServerError", "postgres_bindir"]

_LOG_TAIL_LINES = 30
_POLL_INTERVAL = 0.05


class ServerError(RuntimeError):
    """A throwaway server failed to start or stop; the message includes its log tail."""


def _log_tail(path: Path, offset: int = 0, lines: int = _LOG_TAIL_LINES) -> str:
    """Last lines a server logged since `offset`, so errors explain themselves."""
    try:
        with path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _process_alive(pid: int) -> bool:
    """Whether `pid` runs. Zombies count as dead: in containers whose PID 1 does not reap,
    a daemonized server that exited (or was killed) lingers as one."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no procfs: trust kill()
    return state != "Z"


def _url_host(host: str) -> str:
    """IPv6 literals need brackets inside URLs."""
    return f"[{host}]" if ":" in host else host


# Servers still running when the interpreter exits (a test crashed before its cleanup).
# PostgreSQL daemonizes, so without this it would keep running and hold its port.
_running: set[_ThrowawayServer] = set()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_running):
        with contextlib.suppress(Exception):
            server.stop()


class _ThrowawayServer:
    """Lifecycle shared by both servers: stable port, owned data dir, context manager."""

    #: Files and directories the server creates inside `data_dir`; removed by cleanup().
    _artifacts: tuple[str, ...] = ()

    def __init__(self, data_dir: Path | None, port: int | None, host: str, name: str) -> None:
        self.host = host
        # A directory we created is ours to delete; a caller's directory only loses the
        # files we put there, so a wrong path can never wipe someone's data.
        self._owns_dir = data_dir is None
        if data_dir is None:
            data_dir = Path(tempfile.mkdtemp(prefix=f"devstack-{name}-"))
        self.data_dir = Path(data_dir).absolute()
        # Picked once: stop()/start() must come back on the same port, like a real outage.
        self._port = port if port is not None else free_port(host)

    @property
    def port(self) -> int:
        """TCP port the server listens on; stable across stop()/start()."""
        return self._port

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def is_running(self) -> bool:
        raise NotImplementedError

    def restart(self) -> None:
        """Stop then start on the same port (a short outage)."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop the server and delete its data; the object must not be started again."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            return
        for name in self._artifacts:
            path = self.data_dir / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.data_dir.rmdir()  # only succeeds if nothing else lives there

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state} dir={self.data_dir}>"


def _major(version: str) -> int:
    return int(version) if version.isdigit() else 0


def postgres_bindir() -> Path:
    """Directory holding initdb/pg_ctl/postgres.

    `pg_config --bindir` is the canonical answer, but on Debian it may belong to a newer
    client-only package, so each candidate must actually contain the server binaries.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(  # noqa: S603 - fixed argv, no shell
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout
            candidates.append(Path(out.strip()))
    # Debian layout, newest major version first.
    debian = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(debian, key=lambda p: _major(p.parent.name), reverse=True)
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        candidates.append(Path(pg_ctl).resolve().parent)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise ServerError(
        "PostgreSQL server binaries not found: tried pg_config --bindir, "
        "/usr/lib/postgresql/*/bin and pg_ctl on PATH"
    )


class PostgresServer(_ThrowawayServer):
    """A private PostgreSQL cluster on its own port, for tests and outage simulation.

    Layout of `data_dir`: `pgdata/` (the cluster), `run/` (unix socket), `postgres.log`.
    The cluster is created on first start with trust auth for localhost and fsync off,
    which is what makes it fast; never put data you care about in it. Running as root,
    every PostgreSQL command runs as the `postgres` OS user, because the server refuses
    to run as root.
    """

    _artifacts = ("pgdata", "run", "postgres.log")

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        bindir: Path | None = None,
    ) -> None:
        super().__init__(data_dir, port, host, "postgres")
        self._bindir = bindir
        self._as_postgres = os.geteuid() == 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def admin_dsn(self) -> str:
        """Superuser DSN (trust auth, no password) for the `postgres` database."""
        return f"postgresql://postgres@{_url_host(self.host)}:{self.port}/postgres"

    def dsn(self, database: str = "postgres", user: str = "postgres") -> str:
        """DSN for another database/role on this server (create them via admin_dsn)."""
        return f"postgresql://{user}@{_url_host(self.host)}:{self.port}/{database}"

    def start(self, timeout: float = 30.0) -> None:
        """Start the server (running initdb the first time) and wait until it is ready.

        The postmaster runs as our child, not daemonized by pg_ctl, so that it shuts down
        (fast, cleanly) when the process that started it dies, however it dies.
        """
        if self.is_running():
            return
        ensure_port_free(self.host, self.port)
        deadline = time.monotonic() + timeout
        if self._postmaster_pid() is not None:  # not running, yet a PID: it was killed
            self._remove_stale_lock_files()
        if not (self.pgdata / "PG_VERSION").is_file():
            self._initdb()
        self._write_settings()
        log_offset = _log_size(self.log_path)
        bindir = self._bindir or postgres_bindir()
        as_postgres: dict[str, object] = {}
        if self._as_postgres:
            as_postgres = {"user": "postgres", "group": "postgres", "extra_groups": []}
        with self.log_path.open("ab") as log:
            self._process = lifetime.popen(
                [bindir / "postgres", "-D", self.pgdata],
                death_signal=signal.SIGINT,  # PostgreSQL's fast shutdown
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.data_dir,  # the postgres user may not be allowed into our cwd
                start_new_session=True,  # a Ctrl-C is for the stack to handle, in order
                **as_postgres,
            )  # fmt: skip
        _running.add(self)
        # What pg_ctl --wait reads: postmaster.pid's status line. Then the TCP listener,
        # since that is what clients use.
        while not (self._status() == "ready" and port_is_listening(self.host, self.port, 0.2)):
            if self._process.poll() is not None:
                reason = f"postgres exited with {self._process.returncode}"
                self._fail_start(reason, log_offset)
            if time.monotonic() > deadline:
                self._fail_start(f"not ready within {timeout:.0f}s", log_offset)
            time.sleep(_POLL_INTERVAL)

    def stop(self, mode: str = "fast", timeout: float = 30.0) -> None:
        """Stop the server; `mode` is pg_ctl's: "smart", "fast" or "immediate" (crash-like).

        Returns once the server has exited and released its port.
        """
        if not self.is_running():
            _running.discard(self)
            return
        result = self._pg(
            "pg_ctl", "stop", "--silent", "--wait", "--timeout", str(max(1, int(timeout))),
            "--pgdata", str(self.pgdata), "--mode", mode,
        )  # fmt: skip
        if result.returncode != 0 and self.is_running():
            raise ServerError(
                f"PostgreSQL on {self.host}:{self.port} did not stop: {result.stderr.strip()}\n"
                f"--- {self.log_path} (tail) ---\n{_log_tail(self.log_path)}"
            )
        self._reap()
        _running.discard(self)

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL the postmaster: a crash with no shutdown at all. start() recovers."""
        pid = self._postmaster_pid()
        if pid is None or not _process_alive(pid):
            return
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while _process_alive(pid) and time.monotonic() < deadline:
            time.sleep(_POLL_INTERVAL)
        self._reap()
        _running.discard(self)

    def is_running(self) -> bool:
        """True if the postmaster recorded in postmaster.pid is alive."""
        pid = self._postmaster_pid()
        return pid is not None and _process_alive(pid)

    # -- internals -------------------------------------------------------------------

    def _reap(self) -> None:
        """Collect our postmaster's exit status, so that no zombie holds its PID."""
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)

    def _status(self) -> str | None:
        """The postmaster's state as postmaster.pid records it ("starting", "ready", ...)."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None
        return lines[7].strip() if len(lines) > 7 else None

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

    def _pg(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool, as the postgres OS user when we are root."""
        bindir = self._bindir or postgres_bindir()
        argv = [str(bindir / tool), *args]
        if self._as_postgres:
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            argv = [runuser, "-u", "postgres", "--", *argv]
        return subprocess.run(  # noqa: S603 - argv list, no shell
            argv,
            cwd=self.data_dir,  # the postgres user may not be allowed into our cwd
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def _remove_stale_lock_files(self) -> None:
        """Clean up after a killed postmaster (is_running() just said it is dead).

        PostgreSQL itself refuses to start while the PID in its lock files exists, and a
        killed server whose zombie nobody reaps (PID 1 in many containers) still does.
        """
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
        for lock in self.socket_dir.glob(".s.PGSQL.*"):
            lock.unlink(missing_ok=True)

    def _chown_to_postgres(self, path: Path) -> None:
        if self._as_postgres:
            shutil.chown(path, "postgres", "postgres")

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._chown_to_postgres(self.data_dir)
        result = self._pg(
            "initdb", "--pgdata", str(self.pgdata), "--username", "postgres",
            "--auth", "trust", "--encoding", "UTF8", "--locale", "C", "--no-sync",
        )  # fmt: skip
        if result.returncode != 0:
            hint = ""
            if self._as_postgres:
                hint = (
                    "\nhint: the postgres OS user must be able to reach the data dir; "
                    "pytest's tmp_path is private to root, so pass no data_dir "
                    "(a fresh dir under the system temp dir is used)."
                )
            raise ServerError(f"initdb failed in {self.pgdata}:\n{result.stderr.strip()}{hint}")
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write("\n# Per-start settings written by devstack.servers\n")
            conf.write("include 'devstack.conf'\n")

    def _write_settings(self) -> None:
        """(Re)write per-start settings, so the same cluster can move host or port."""
        self.socket_dir.mkdir(exist_ok=True)
        self._chown_to_postgres(self.socket_dir)

        def quoted(value: object) -> str:
            return "'" + str(value).replace("'", "''") + "'"

        settings = {
            "listen_addresses": quoted(self.host),
            "port": str(self.port),
            "unix_socket_directories": quoted(self.socket_dir),
            # Throwaway data: skip fsync (only an OS crash could lose data). Commits are
            # still written before they return, so kill() loses no committed rows and
            # crash-recovery tests stay realistic.
            "fsync": "off",
            "full_page_writes": "off",
            "shared_buffers": "16MB",
            "max_connections": "200",
        }
        conf = self.pgdata / "devstack.conf"
        conf.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        self._chown_to_postgres(conf)

    def _fail_start(self, reason: str, log_offset: int) -> NoReturn:
        tail = _log_tail(self.log_path, log_offset)
        with contextlib.suppress(Exception):
            self.stop(mode="immediate")
        if self._process is not None and self._process.poll() is None:
            self._process.kill()  # still starting, before postmaster.pid names it
        self._reap()
        raise ServerError(
            f"PostgreSQL on {self.host}:{self.port} failed to start: {reason}\n"
            f"--- {self.log_path} (tail) ---\n{tail}"
        )


class RedisServer(_ThrowawayServer):
    """A private redis-server on its own port, non-persistent unless asked.

    By default nothing is saved (no RDB, no AOF), so a stop()/start() cycle is a restart with
    an empty dataset: the right model for a cache or a rate-limiter store losing its state.
    `persistent=True` keeps an append-only file in `data_dir` (make dev's own server).
    """

    _artifacts = ("redis.log", "appendonlydir", "dump.rdb")

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        executable: str | Path | None = None,
        persistent: bool = False,
    ) -> None:
        super().__init__(data_dir, port, host, "redis")
        self._executable = executable
        self._persistent = persistent
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// URL for database 0."""
        return f"redis://{_url_host(self.host)}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def start(self, timeout: float = 10.0) -> None:
        """Launch redis-server and wait until it answers PING."""
        if self.is_running():
            return
        ensure_port_free(self.host, self.port)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        executable = self._executable or shutil.which("redis-server") or "/usr/bin/redis-server"
        argv = [
            str(executable),
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "yes" if self._persistent else "no",
            "--dir", str(self.data_dir),
            "--daemonize", "no",
        ]  # fmt: skip
        log_offset = _log_size(self.log_path)
        with self.log_path.open("ab") as log:
            self._process = lifetime.popen(
                argv, death_signal=signal.SIGTERM,  # saves what it must, then exits
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.data_dir, start_new_session=True,
            )  # fmt: skip
        _running.add(self)
        deadline = time.monotonic() + timeout
        while not self._answers_ping():
            if self._process.poll() is not None:
                self._fail_start(f"redis-server exited with {self._process.returncode}", log_offset)
            if time.monotonic() > deadline:
                self._fail_start(f"no PING reply within {timeout:.0f}s", log_offset)
            time.sleep(_POLL_INTERVAL)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate redis-server (SIGTERM, then SIGKILL) and wait until it has exited."""
        process, self._process = self._process, None
        _running.discard(self)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL redis-server: a crash with no shutdown at all."""
        process, self._process = self._process, None
        _running.discard(self)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _answers_ping(self) -> bool:
        """One raw PING, no retries (redis-py's client retries with backoff by default)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def _fail_start(self, reason: str, log_offset: int) -> NoReturn:
        self.stop()
        raise ServerError(
            f"Redis on {self.host}:{self.port} failed to start: {reason}\n"
            f"--- {self.log_path} (tail) ---\n{_log_tail(self.log_path, log_offset)}"
        )
