"""The native stack: databases, migrations, mail sink, the four services and the gateway.

The gateway is the real Traefik on gateway/traefik.yml and gateway/dynamic.yml, as in
compose (see devstack.traefik). `make dev` runs it all in the foreground, on the machine's
PostgreSQL and Redis or its own (devstack.embedded), restarting a service whose code changes
(devstack.reload); the end-to-end tests start it on free ports with private PostgreSQL and
Redis servers, and stop pieces of it to inject faults. Every child dies with the process that
started it, however that one dies (devstack.lifetime).
"""

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

import httpx

from devstack import REPO_ROOT, embedded, lifetime
from devstack.embedded import postgres_refusal, redis_refusal
from devstack.ports import PortInUse, ensure_port_free, free_port
from devstack.prometheus import prometheus_argv, prometheus_executable
from devstack.provision import SERVICES, ensure_service_database
from devstack.servers import PostgresServer, RedisServer, ServerError
from devstack.traefik import traefik_argv

if TYPE_CHECKING:
    from devstack.reload import Reloader

_Server = TypeVar("_Server", PostgresServer, RedisServer)
#: servicekit's code, relative to a source root: every service runs it.
KIT_SOURCE = Path("libs/servicekit/src")
DEFAULT_SERVICE_PORTS = {"auth": 8001, "users": 8002, "items": 8003, "notifications": 8004}
#: Each service's metrics port (METRICS_PORT), and Prometheus's, when `make dev` runs.
DEFAULT_METRICS_PORTS = {"auth": 9101, "users": 9102, "items": 9103, "notifications": 9104}
DEFAULT_PROMETHEUS_PORT = 9190  # not 9090: a system Prometheus (Debian starts one) may hold it


class StackError(RuntimeError):
    """The stack cannot start; the message says why and what to do."""


@dataclass
class StackConfig:
    host: str = "127.0.0.1"
    gateway_port: int = 8000
    #: Traefik's internal entry point (ping, the credential routes' rate limit), as in compose.
    gateway_internal_port: int = 8080
    mail_http_port: int = 8025
    smtp_port: int = 1025
    service_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_SERVICE_PORTS))
    #: Ignored when `private_servers` is set: the stack then brings its own.
    postgres_admin_dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    redis_url: str = "redis://127.0.0.1:6379/0"
    private_servers: bool = False
    state_dir: Path = REPO_ROOT / ".dev"
    #: Where the services' and servicekit's code is run (and watched) from: a copy in tests.
    source_root: Path = REPO_ROOT
    #: Restart a service when its code, or servicekit's, changes (devstack.reload).
    reload: bool = False
    echo_logs: bool = True
    #: Set when the stack made `state_dir` itself and so removes it on stop.
    owns_state_dir: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_METRICS_PORTS))
    prometheus_port: int = DEFAULT_PROMETHEUS_PORT
    prometheus_scrape_interval: str = "5s"
    #: Off for the benchmarks: a scraper on the same cores would be measured with the service.
    prometheus: bool = True

    @classmethod
    def isolated(cls, **overrides: object) -> "StackConfig":
        """Free ports, private servers and a temporary directory: safe beside anything else."""
        config = cls(
            private_servers=True,
            state_dir=Path(tempfile.mkdtemp(prefix="devstack-")),
            echo_logs=False,
            owns_state_dir=True,
            prometheus_scrape_interval="1s",
        )
        config.use_free_ports()
        for key, value in overrides.items():
            setattr(config, key, value)
        return config

    def use_free_ports(self) -> None:
        """Every port chosen by the OS: beside another stack, or a test's."""
        self.gateway_port, self.gateway_internal_port = free_port(), free_port()
        self.mail_http_port, self.smtp_port = free_port(), free_port()
        self.service_ports = {name: free_port() for name in SERVICES}
        self.metrics_ports = {name: free_port() for name in SERVICES}
        self.prometheus_port = free_port()

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"

    @property
    def gateway_internal_url(self) -> str:
        return f"http://{self.host}:{self.gateway_internal_port}"

    @property
    def mailbox_url(self) -> str:
        return f"http://{self.host}:{self.mail_http_port}"

    def service_url(self, name: str) -> str:
        return f"http://{self.host}:{self.service_ports[name]}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{self.prometheus_port}"


class ManagedProcess:
    """A child process in its own process group, its output copied to a log file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        echo: bool,
    ) -> None:
        self.name, self.argv, self.env, self.cwd = name, argv, dict(env), cwd
        self.log_path, self.echo = log_path, echo
        self.process: subprocess.Popen[bytes] | None = None
        #: The next process, warmed up and waiting for `replace()` (devstack.standby).
        self.standby: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = self._spawn(self.argv)

    def _spawn(self, argv: list[str], stdin: int | None = None) -> subprocess.Popen[bytes]:
        if not self.echo:
            # Straight into the file: copying every access-log line through a thread of ours
            # costs CPU the measured processes need (benchmarks, load runs).
            with self.log_path.open("ab") as log:
                return self._popen(argv, log, stdin)
        process = self._popen(argv, subprocess.PIPE, stdin)
        threading.Thread(target=self._copy_output, args=(process,), daemon=True).start()
        return process

    def _popen(
        self, argv: list[str], stdout: int | IO[bytes], stdin: int | None
    ) -> subprocess.Popen[bytes]:
        # Killed with us if we die without stopping it (SIGKILL, out of memory).
        return lifetime.popen(
            argv,
            env=self.env,
            cwd=self.cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _copy_output(self, process: subprocess.Popen[bytes]) -> None:
        if process.stdout is None:
            return
        with self.log_path.open("ab") as log:
            for line in process.stdout:
                log.write(line)
                log.flush()
                if self.echo:
                    sys.stdout.write(f"[{self.name}] {line.decode(errors='replace')}")
                    sys.stdout.flush()

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def note(self, line: str) -> None:
        """A line of ours in this process's log (and on the console when echoing)."""
        with self.log_path.open("a") as log:
            log.write(f"devstack: {line}\n")
        if self.echo:
            print(f"[{self.name}] devstack: {line}", flush=True)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 10.0) -> None:
        self._drop_standby()
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        _wait_or_kill(self.process, timeout)

    def replace(self, timeout: float = 10.0) -> None:
        """Start anew while the old process shuts down; returns once the old one has exited.

        uvicorn closes its listener as soon as SIGTERM arrives, and the new process binds only
        after its imports: the old one's graceful shutdown costs no time.
        """
        old = self.process
        standby, self.standby = self.standby, None
        if standby is not None and standby.poll() is None and standby.stdin is not None:
            with contextlib.suppress(OSError), standby.stdin:
                standby.stdin.write(b"serve\n")
            self.process = standby
        else:
            self.start()
        # Only now: `process` never names an exited process while this one is being replaced.
        if old is not None and old.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(old.pid, signal.SIGTERM)
            _wait_or_kill(old, timeout)

    def warm_standby(self, argv: list[str]) -> None:
        """Have a next process (devstack.standby's `argv`) import its libraries and wait."""
        if self.standby is None or self.standby.poll() is not None:
            self.standby = self._spawn(argv, stdin=subprocess.PIPE)

    def _drop_standby(self) -> None:
        standby, self.standby = self.standby, None
        if standby is not None and standby.poll() is None:
            os.killpg(standby.pid, signal.SIGKILL)
            standby.wait()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no output)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _wait_or_kill(process: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class Stack:
    """Start with `start()` (or `with Stack(config):`), stop with `stop()`."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.postgres: PostgresServer | None = None
        self.redis: RedisServer | None = None
        self.processes: dict[str, ManagedProcess] = {}
        self.logs_dir = config.state_dir / "logs"
        #: Servers of ours kept between runs under state_dir (stopped, never deleted).
        self.embedded: list[PostgresServer | RedisServer] = []

    # ---- dependencies -------------------------------------------------------------------
    @property
    def postgres_admin_dsn(self) -> str:
        return self.postgres.admin_dsn if self.postgres else self.config.postgres_admin_dsn

    @property
    def redis_url(self) -> str:
        return self.redis.url if self.redis else self.config.redis_url

    def _start_private_servers(self) -> None:
        # The postgres OS user cannot enter a root-only temp dir; let it pick its own.
        self.postgres = PostgresServer(None, port=free_port())
        self.postgres.start()
        self.redis = RedisServer(self.config.state_dir / "redis", port=free_port())
        self.redis.start()

    def embed_unusable_servers(self) -> None:
        """Our own PostgreSQL and Redis where the machine's cannot be used as they are."""
        config = self.config
        refusal = asyncio.run(postgres_refusal(config.postgres_admin_dsn))
        if refusal is not None:
            self.postgres = self._embed("PostgreSQL", refusal, embedded.start_postgres)
            self.embedded.append(self.postgres)
            dsn = config.postgres_admin_dsn
            print(embedded.notice("PostgreSQL", dsn, refusal, self.postgres), flush=True)
        refusal = redis_refusal(config.redis_url)
        if refusal is not None:
            self.redis = self._embed("Redis", refusal, embedded.start_redis)
            self.embedded.append(self.redis)
            print(embedded.notice("Redis", config.redis_url, refusal, self.redis), flush=True)

    def _embed(self, what: str, refusal: str, start: Callable[[Path, str], _Server]) -> _Server:
        try:
            return start(self.config.state_dir, self.config.host)
        except ServerError as exc:
            raise StackError(f"{what} cannot be used ({refusal}), nor our own: {exc}") from exc

    def _check_dependencies(self) -> None:
        if refusal := asyncio.run(postgres_refusal(self.postgres_admin_dsn)):
            raise StackError(f"PostgreSQL cannot be used at {self.postgres_admin_dsn}: {refusal}")
        if refusal := redis_refusal(self.redis_url):
            raise StackError(f"Redis cannot be used at {self.redis_url}: {refusal}")

    def _check_ports(self) -> None:
        ports = {
            "gateway": self.config.gateway_port,
            "gateway (internal entry point)": self.config.gateway_internal_port,
            "mail sink (HTTP)": self.config.mail_http_port,
            "mail sink (SMTP)": self.config.smtp_port,
            **self.config.service_ports,
            **{f"{name} metrics": port for name, port in self.config.metrics_ports.items()},
            "prometheus": self.config.prometheus_port,
        }
        for owner, port in ports.items():
            try:
                ensure_port_free(self.config.host, port)
            except PortInUse as exc:
                raise StackError(f"{exc} (needed by the {owner}); stop what holds it") from exc

    # ---- environment --------------------------------------------------------------------
    def database_url(self, name: str, *, scheme: str = "postgresql+asyncpg") -> str:
        """The service's own database, as its settings name it (`scheme="postgresql"`: libpq's)."""
        admin = httpx.URL(self.postgres_admin_dsn)
        return f"{scheme}://{name}:{name}-dev-only@{admin.host}:{admin.port or 5432}/{name}"

    def service_env(self, name: str) -> dict[str, str]:
        """What a service reads from its environment, pointed at this stack."""
        config = self.config
        code = [config.source_root / "services" / name / "src", config.source_root / KIT_SOURCE]
        return {
            **os.environ,
            # Ahead of the editable installs: the code under source_root is what runs.
            "PYTHONPATH": os.pathsep.join(map(str, code)),
            "ENVIRONMENT": "development",
            "SERVICE_NAME": name,
            "DATABASE_URL": self.database_url(name),
            "REDIS_URL": self.redis_url,
            "PUBLIC_URL": config.gateway_url,
            "AUTH_ISSUER": f"{config.gateway_url}/api/v1/auth",
            "JWKS_URL": f"{config.service_url('auth')}/api/v1/auth/.well-known/jwks.json",
            "AUTH_KEYS_DIR": str(config.state_dir / "keys"),
            "SMTP_HOST": config.host,
            "SMTP_PORT": str(config.smtp_port),
            "METRICS_HOST": config.host,
            "METRICS_PORT": str(config.metrics_ports[name]),
            **config.extra_env,
        }

    def gateway_env(self) -> dict[str, str]:
        """The variables gateway/dynamic.yml's templates read, pointed at this stack."""
        upstreams = {f"{name.upper()}_UPSTREAM": self.config.service_url(name) for name in SERVICES}
        internal = {"GATEWAY_INTERNAL_URL": self.config.gateway_internal_url}
        return {**os.environ, **upstreams, **internal, **self.config.extra_env}

    def gateway_argv(self) -> list[str]:
        config = self.config
        return traefik_argv(
            host=config.host,
            web_port=config.gateway_port,
            internal_port=config.gateway_internal_port,
        )

    # ---- life cycle ---------------------------------------------------------------------
    def _process(self, name: str, argv: list[str], env: Mapping[str, str], cwd: Path) -> None:
        process = ManagedProcess(
            name,
            argv,
            env=env,
            cwd=cwd,
            log_path=self.logs_dir / f"{name}.log",
            echo=self.config.echo_logs,
        )
        self.processes[name] = process
        process.start()

    def service_argv(self, name: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            f"{name}.main:app",
            "--host",
            self.config.host,
            "--port",
            str(self.config.service_ports[name]),
            # Only the gateway, on this host, may set X-Forwarded-For.
            "--forwarded-allow-ips",
            "127.0.0.1",
            "--no-access-log",
            "--no-server-header",  # no `Server: uvicorn` naming the software
        ]

    def migrate(self, name: str) -> None:
        result = lifetime.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=self.config.source_root / "services" / name,
            env=self.service_env(name),
        )
        if result.returncode != 0:
            raise StackError(f"migrations of {name} failed:\n{result.stderr[-3000:]}")

    def start(self) -> None:
        config = self.config
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        try:
            if config.private_servers:
                self._start_private_servers()
            else:
                self.embed_unusable_servers()
            self._check_dependencies()
            self._check_ports()
            for name in SERVICES:
                asyncio.run(
                    ensure_service_database(self.postgres_admin_dsn, name, f"{name}-dev-only")
                )
                self.migrate(name)
            self._process(
                "mailsink",
                [
                    sys.executable,
                    "-m",
                    "devstack.mailsink",
                    "--smtp-host",
                    config.host,
                    "--smtp-port",
                    str(config.smtp_port),
                    "--http-host",
                    config.host,
                    "--http-port",
                    str(config.mail_http_port),
                ],
                os.environ,
                REPO_ROOT,
            )
            for name in SERVICES:
                self._process(
                    name,
                    self.service_argv(name),
                    self.service_env(name),
                    config.source_root / "services" / name,
                )
            self._process("gateway", self.gateway_argv(), self.gateway_env(), REPO_ROOT)
            if config.prometheus:
                self._start_prometheus()
            self.wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _start_prometheus(self) -> None:
        """Scrape every service and the gateway, when Debian's `prometheus` is installed."""
        executable = prometheus_executable()
        if executable is None:
            return
        config = self.config
        targets = {name: f"{config.host}:{port}" for name, port in config.metrics_ports.items()}
        targets["gateway"] = f"{config.host}:{config.gateway_internal_port}"
        argv = prometheus_argv(
            executable,
            state_dir=config.state_dir / "prometheus",
            listen=f"{config.host}:{config.prometheus_port}",
            targets=targets,
            scrape_interval=config.prometheus_scrape_interval,
        )
        self._process("prometheus", argv, os.environ, REPO_ROOT)

    def restart_process(self, name: str) -> None:
        """Stop and start one child again (fault tests kill consumers, SMTP, ...)."""
        process = self.processes[name]
        process.stop()
        process.start()
        self._wait_for(name, self._health_url(name))

    def reload_service(self, name: str) -> None:
        """A new process for service `name`, running its code as it is now (devstack.reload)."""
        process = self.processes[name]
        process.replace()
        try:
            self._wait_for(name, self._health_url(name))
        except StackError:
            if process.is_running() or "address already in use" not in process.log_tail():
                raise
            # The old process held the port past the new one's imports; it is free now.
            process.start()
            self._wait_for(name, self._health_url(name))
        process.warm_standby(self.standby_argv(name))

    def standby_argv(self, name: str) -> list[str]:
        """The service's command line, run warmed up by devstack.standby."""
        return [sys.executable, "-m", "devstack.standby", *self.service_argv(name)[1:]]

    def _health_url(self, name: str) -> str:
        config = self.config
        if name == "gateway":
            # Not /ping: until the pages pool's first health check Traefik's own answers
            # (unknown path, rate limit, upstream down) are plain text; this page is served
            # through that pool, so it answers 200 only once they are JSON.
            return f"{config.gateway_internal_url}/gateway-error/200"
        if name == "prometheus":
            return f"{config.prometheus_url}/-/ready"
        if name == "mailsink":
            return f"{config.mailbox_url}/api/v1/messages"
        return f"{config.service_url(name)}/api/v1/{name}/health"

    def _wait_for(self, name: str, url: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        process = self.processes[name]
        while time.monotonic() < deadline:
            if not process.is_running():
                raise StackError(f"{name} exited while starting:\n{process.log_tail()}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise StackError(f"{name} was not ready after {timeout:.0f}s:\n{process.log_tail()}")

    def wait_until_ready(self) -> None:
        for name in self.processes:
            self._wait_for(name, self._health_url(name))
        # Traefik answers its ping before its file provider has loaded the routes.
        self._wait_for("gateway", f"{self.config.gateway_url}/api/v1/auth/health")
        # The error pages' pool is marked up only by its next health check (5 s) if the first
        # one ran before the services listened: until then an unmatched path is a plain 503.
        self._wait_for("gateway", f"{self.config.gateway_internal_url}/gateway-error/200")

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()
        for server in (self.redis, self.postgres):
            if server is not None:
                server.stop()
                if server not in self.embedded:
                    server.cleanup()
        if self.config.owns_state_dir:
            shutil.rmtree(self.config.state_dir, ignore_errors=True)

    def dead_processes(self) -> list[str]:
        return [name for name, process in self.processes.items() if not process.is_running()]

    def __enter__(self) -> "Stack":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def print_urls(config: StackConfig) -> None:
    gateway = config.gateway_url
    lines = [
        "",
        "The native stack is up:",
        f"  gateway        {gateway}  (Traefik)",
        *(f"  {name:<14} {gateway}/api/v1/{name}/docs" for name in SERVICES),
        f"  mailbox        {config.mailbox_url}/api/v1/messages",
        f"  prometheus     {config.prometheus_url}  (when Debian's prometheus is installed)",
        f"  logs           {config.state_dir / 'logs'}",
        "Press Ctrl-C to stop.",
        "",
    ]
    print("\n".join(lines), flush=True)


class _StopSignals:
    """SIGINT, SIGTERM and SIGHUP stop the stack: the first interrupts whatever runs, any later
    one is only counted. A terminal's Ctrl-C reaches us more than once (directly and through
    `uv run`), and so does a TERM to the process group: a second signal must never cut the
    clean-up short and leave children running."""

    def __init__(self) -> None:
        self.received = 0
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.received += 1
        if self.received == 1:
            raise KeyboardInterrupt

    def stop_interrupting(self) -> None:
        self.received = max(self.received, 1)


def _stop_for_good(stack: Stack, reloader: "Reloader | None", signals: _StopSignals) -> None:
    while True:
        try:
            signals.stop_interrupting()
            if reloader is not None:
                reloader.stop()
            stack.stop()
            return
        except KeyboardInterrupt:  # the first signal, landing before stop_interrupting()
            continue


def run_foreground(config: StackConfig) -> int:
    """`make dev`: start everything, print the URLs, reload changed services, stop cleanly on
    Ctrl-C, SIGTERM or SIGHUP; children the clean stop misses die with us (devstack.lifetime)."""
    from devstack.reload import Reloader  # it drives a Stack: imported here, not in a cycle

    signals = _StopSignals()
    stack = Stack(config)
    reloader: Reloader | None = None
    started = False
    try:
        try:
            stack.start()
        except StackError as exc:
            print(f"make dev: {exc}", file=sys.stderr)
            return 1
        started = True
        print_urls(config)
        if config.reload:
            reloader = Reloader(stack)
            reloader.start()
        while True:
            excused = reloader.excused() if reloader else set()
            if dead := [name for name in stack.dead_processes() if name not in excused]:
                break
            time.sleep(0.5)
        for name in dead:
            print(f"{name} exited unexpectedly; stopping the stack", file=sys.stderr)
            print(stack.processes[name].log_tail(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if not started:
            return 130
        print("\nStopping…", flush=True)
        return 0
    finally:
        _stop_for_good(stack, reloader, signals)
