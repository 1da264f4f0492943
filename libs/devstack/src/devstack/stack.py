"""The native stack: databases, migrations, mail sink, the four services and the gateway.

The gateway is the real Traefik on gateway/traefik.yml and gateway/dynamic.yml, as in
compose (see devstack.traefik). `make dev` runs it all in the foreground; the end-to-end
tests start it on free ports with private PostgreSQL and Redis servers, and stop pieces of
it to inject faults.
"""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import asyncpg
import httpx
import redis

from devstack import REPO_ROOT
from devstack.ports import PortInUse, ensure_port_free, free_port
from devstack.prometheus import prometheus_argv, prometheus_executable
from devstack.provision import SERVICES, ensure_service_database
from devstack.servers import PostgresServer, RedisServer
from devstack.traefik import traefik_argv

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
    echo_logs: bool = True
    #: Set when the stack made `state_dir` itself and so removes it on stop.
    owns_state_dir: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_METRICS_PORTS))
    prometheus_port: int = DEFAULT_PROMETHEUS_PORT
    prometheus_scrape_interval: str = "5s"

    @classmethod
    def isolated(cls, **overrides: object) -> "StackConfig":
        """Free ports, private servers and a temporary directory: safe beside anything else."""
        config = cls(
            gateway_port=free_port(),
            gateway_internal_port=free_port(),
            mail_http_port=free_port(),
            smtp_port=free_port(),
            service_ports={name: free_port() for name in SERVICES},
            private_servers=True,
            state_dir=Path(tempfile.mkdtemp(prefix="devstack-")),
            echo_logs=False,
            owns_state_dir=True,
            metrics_ports={name: free_port() for name in SERVICES},
            prometheus_port=free_port(),
            prometheus_scrape_interval="1s",
        )
        for key, value in overrides.items():
            setattr(config, key, value)
        return config

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

    def start(self) -> None:
        if not self.echo:
            # Straight into the file: copying every access-log line through a thread of ours
            # costs CPU the measured processes need (benchmarks, load runs).
            with self.log_path.open("ab") as log:
                self.process = self._popen(log)
            return
        self.process = self._popen(subprocess.PIPE)
        threading.Thread(target=self._copy_output, daemon=True).start()

    def _popen(self, stdout: int | IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - argv is built by us, never from input
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _copy_output(self) -> None:
        if self.process is None or self.process.stdout is None:
            return
        with self.log_path.open("ab") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                if self.echo:
                    sys.stdout.write(f"[{self.name}] {line.decode(errors='replace')}")
                    sys.stdout.flush()

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no output)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Stack:
    """Start with `start()` (or `with Stack(config):`), stop with `stop()`."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.postgres: PostgresServer | None = None
        self.redis: RedisServer | None = None
        self.processes: dict[str, ManagedProcess] = {}
        self.logs_dir = config.state_dir / "logs"

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

    def _check_dependencies(self) -> None:
        try:
            asyncio.run(_postgres_answers(self.postgres_admin_dsn))
        except Exception as exc:
            raise StackError(
                f"PostgreSQL is not reachable at {self.postgres_admin_dsn} ({exc}).\n"
                "Start it, e.g.: pg_ctlcluster --skip-systemctl-redirect "
                "$(ls /etc/postgresql) main start"
            ) from exc
        try:
            redis.Redis.from_url(self.redis_url, socket_connect_timeout=3).ping()
        except redis.RedisError as exc:
            raise StackError(
                f"Redis is not reachable at {self.redis_url} ({exc}).\n"
                "Start it, e.g.: redis-server --daemonize yes --port 6379"
            ) from exc

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
        return {
            **os.environ,
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
        ]

    def migrate(self, name: str) -> None:
        result = subprocess.run(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=REPO_ROOT / "services" / name,
            env=self.service_env(name),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"migrations of {name} failed:\n{result.stderr[-3000:]}")

    def start(self) -> None:
        config = self.config
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        try:
            if config.private_servers:
                self._start_private_servers()
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
                    REPO_ROOT / "services" / name,
                )
            self._process("gateway", self.gateway_argv(), self.gateway_env(), REPO_ROOT)
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

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()
        for server in (self.redis, self.postgres):
            if server is not None:
                server.stop()
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


async def _postgres_answers(dsn: str) -> None:
    connection = await asyncpg.connect(dsn, timeout=3)
    await connection.close()


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


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_foreground(config: StackConfig) -> int:
    """`make dev`: start everything, print the URLs, stop cleanly on Ctrl-C or SIGTERM."""
    signal.signal(signal.SIGTERM, _interrupt)
    stack = Stack(config)
    try:
        stack.start()
    except StackError as exc:
        print(f"make dev: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print_urls(config)
    try:
        while not (dead := stack.dead_processes()):
            time.sleep(0.5)
        for name in dead:
            print(f"{name} exited unexpectedly; stopping the stack", file=sys.stderr)
            print(stack.processes[name].log_tail(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
        return 0
    finally:
        # A terminal's Ctrl-C reaches us more than once (directly and through `uv run`);
        # a second interrupt must not cut the clean-up short and leave children running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
