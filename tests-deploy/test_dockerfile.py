"""docker/Dockerfile, .dockerignore and the scripts the image runs, checked without an engine."""

# ruff: noqa: S101 - pytest assertions (pyproject's per-file-ignores predate tests-deploy)

import http.server
import os
import re
import signal
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploykit import (
    DOCKERFILE,
    REPO_ROOT,
    SERVICES,
    Dockerfile,
    DockerIgnore,
    Stage,
    load_module,
    parse_dockerfile,
    substitute,
)

from devstack.ports import free_port

SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE|CREDENTIAL|API_?KEY", re.IGNORECASE)


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile()


@pytest.fixture(scope="module")
def runtime(dockerfile: Dockerfile) -> Stage:
    return dockerfile.stages[-1]


@pytest.fixture(scope="module")
def entrypoint() -> Any:
    return load_module("docker/entrypoint.py")


@pytest.fixture(scope="module")
def healthcheck() -> Any:
    return load_module("docker/healthcheck.py")


def _pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return (
        bool(name) and "/" not in tag and tag not in ("", "latest") and bool(re.search(r"\d", tag))
    )


# ---- Dockerfile rules --------------------------------------------------------------------


def test_multi_stage_with_a_slim_runtime(dockerfile: Dockerfile, runtime: Stage) -> None:
    assert len(dockerfile.stages) >= 2
    assert runtime.name == "runtime"
    assert "slim" in runtime.resolved_base
    # The runtime installs nothing: no compilers or package managers end up in it.
    for run in runtime.all("RUN"):
        assert not re.search(r"\b(apt-get|apt|pip|uv)\s+(install|sync)", run.arguments), run


def test_base_images_are_pinned(dockerfile: Dockerfile) -> None:
    stage_names = {stage.name for stage in dockerfile.stages}
    for stage in dockerfile.stages:
        if stage.resolved_base in stage_names:
            continue
        assert _pinned(stage.resolved_base), f"line FROM {stage.base}: pin a version tag"
        for copy in stage.all("COPY"):
            flags, _ = copy.flags()
            source = flags.get("from")
            if source and source not in stage_names:
                assert _pinned(source), f"COPY --from={source}: pin a version tag"


def test_builder_and_runtime_share_the_base(dockerfile: Dockerfile) -> None:
    """The venv's interpreter is a symlink into the base image: both stages need the same one."""
    builder = dockerfile.stage("builder")
    assert builder.resolved_base == dockerfile.stages[-1].resolved_base
    copies = [c for c in dockerfile.stages[-1].all("COPY") if c.flags()[0].get("from") == "builder"]
    assert [c.flags()[1] for c in copies] == ["/app/.venv /app/.venv"]
    assert "UV_PROJECT_ENVIRONMENT=/app/.venv" in " ".join(i.arguments for i in builder.all("ENV"))


def test_uv_is_the_official_image_at_the_one_pinned_version(dockerfile: Dockerfile) -> None:
    """One uv version: pyproject.toml's required-version, which uv itself enforces, the
    bootstrap installs and the offline uv image is built at."""
    uv_stage = dockerfile.stage("uv")
    match = re.fullmatch(r"ghcr\.io/astral-sh/uv:(\d+\.\d+\.\d+)", uv_stage.resolved_base)
    assert match, uv_stage.resolved_base
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["uv"]["required-version"] == f"=={match[1]}"
    versions = load_module("docker/offline/versions.py")
    assert versions.pinned_versions()[0] == match[1]


def test_uv_sync_is_frozen_without_dev_for_the_service_only(dockerfile: Dockerfile) -> None:
    syncs = [
        run.arguments
        for run in dockerfile.stage("builder").all("RUN")
        if "uv sync" in run.arguments
    ]
    assert syncs
    for sync in syncs:
        assert "--mount=type=cache,target=/root/.cache/uv" in sync
        for option in ("--frozen", "--no-dev", '--package "$SERVICE"'):
            assert option in sync, f"uv sync without {option}: {sync}"
    [install] = [sync for sync in syncs if "--no-editable" in sync]
    # uv reuses a cached wheel of a local package until its pyproject.toml changes: without
    # a reinstall, the cache mount would ship an earlier build's code.
    assert "--reinstall-package" in install
    env = " ".join(i.arguments for i in dockerfile.stage("builder").all("ENV"))
    assert "UV_COMPILE_BYTECODE=1" in env


def test_runs_as_a_fixed_non_root_user(runtime: Stage) -> None:
    keywords = [i.keyword for i in runtime.instructions]
    users = runtime.all("USER")
    assert users, "the runtime stage never drops root"
    uid = users[-1].arguments.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    last_user = max(i for i, k in enumerate(keywords) if k == "USER")
    first_start = min(i for i, k in enumerate(keywords) if k in ("ENTRYPOINT", "CMD"))
    assert last_user < first_start
    created = " ".join(run.arguments for run in runtime.all("RUN"))
    assert f"--uid {uid}" in created, "the USER's uid is the one useradd creates"


def test_healthcheck_and_port(runtime: Stage, entrypoint: Any, healthcheck: Any) -> None:
    [check] = runtime.all("HEALTHCHECK")
    _, command = check.flags()
    assert command.startswith("CMD ")
    assert "/app/docker/healthcheck.py" in command
    assert [e.arguments for e in runtime.all("EXPOSE")] == [str(entrypoint.PORT)]
    assert healthcheck.PORT == entrypoint.PORT


def test_entrypoint_is_exec_form(runtime: Stage) -> None:
    [start] = runtime.all("ENTRYPOINT")
    assert start.exec_form == ["python", "/app/docker/entrypoint.py"], "exec form: signals reach"
    assert not runtime.all("CMD")


def test_no_secrets_in_build_args_or_environment(dockerfile: Dockerfile) -> None:
    names = list(dockerfile.global_args)
    for stage in dockerfile.stages:
        for instruction in stage.all("ARG"):
            names.append(instruction.arguments.partition("=")[0])
        for instruction in stage.all("ENV"):
            names += re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", instruction.arguments)
    assert names
    offending = [name for name in names if SECRET_NAME.search(name)]
    assert not offending, f"secrets must not be ARG/ENV (they stay in the image): {offending}"


def test_apt_lists_are_cleaned_wherever_apt_installs(dockerfile: Dockerfile) -> None:
    for stage in dockerfile.stages:
        for run in stage.all("RUN"):
            if re.search(r"apt(-get)?\s+install", run.arguments):
                assert "--no-install-recommends" in run.arguments
                assert "rm -rf /var/lib/apt/lists/*" in run.arguments


def test_service_arg_is_validated(dockerfile: Dockerfile) -> None:
    builder = dockerfile.stage("builder")
    assert any(a.arguments == "SERVICE" for a in builder.all("ARG"))
    assert any(
        'test -n "$SERVICE" && test -f "services/$SERVICE/pyproject.toml"' in run.arguments
        for run in builder.all("RUN")
    )
    runtime = dockerfile.stages[-1]
    assert "SERVICE=${SERVICE}" in " ".join(e.arguments for e in runtime.all("ENV"))


@pytest.mark.parametrize("service", SERVICES)
def test_copied_sources_exist_and_reach_the_build_context(
    dockerfile: Dockerfile, service: str
) -> None:
    ignore = DockerIgnore.load()
    for stage in dockerfile.stages:
        for copy in stage.all("COPY"):
            flags, rest = copy.flags()
            if "from" in flags:
                continue
            *sources, _ = substitute(rest, {"SERVICE": service}).split()
            for source in sources:
                if source == ".":
                    continue
                path = REPO_ROOT / source
                assert path.exists(), f"COPY {source}: no such file"
                files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                kept = [p for p in files if not ignore.excludes(str(p.relative_to(REPO_ROOT)))]
                assert kept, f"COPY {source}: .dockerignore leaves nothing of it"
                assert not ignore.excludes(source), f"COPY {source} is excluded by .dockerignore"


# ---- .dockerignore -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".env.production",
        "secrets/auth_private_key.pem",
        "some/where/key.pem",
        ".dev/keys/signing-key-rs256.pem",
        ".venv/bin/python",
        ".git/HEAD",
        "services/auth/src/auth/__pycache__/main.cpython-311.pyc",
        "services/auth/tests/test_login.py",
        "libs/servicekit/tests/conftest.py",
        "libs/servicekit-testing/src/servicekit_testing/plugin.py",
        "tests-e2e/conftest.py",
        "tests-deploy/test_compose.py",
        ".pytest_cache/v/cache/lastfailed",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/CACHEDIR.TAG",
    ],
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert DockerIgnore.load().excludes(path)


def test_dockerignore_keeps_the_workspace() -> None:
    ignore = DockerIgnore.load()
    needed = ["pyproject.toml", "uv.lock", "docker/entrypoint.py", "docker/healthcheck.py"]
    for base in ("libs/servicekit", *(f"services/{name}" for name in SERVICES)):
        needed.append(f"{base}/pyproject.toml")
        needed += [str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / base / "src").rglob("*.py")]
    for name in SERVICES:
        needed += [f"services/{name}/alembic.ini", f"services/{name}/migrations/env.py"]
    # Every workspace member's manifest: uv needs them all to read the workspace.
    needed += [str(p.relative_to(REPO_ROOT)) for p in REPO_ROOT.glob("libs/*/pyproject.toml")]
    missing = [path for path in needed if not (REPO_ROOT / path).exists()]
    assert not missing
    kept_out = [path for path in needed if ignore.excludes(path)]
    assert not kept_out, f".dockerignore leaves out files the image needs: {kept_out}"


def test_dockerfile_is_where_compose_looks() -> None:
    assert DOCKERFILE == REPO_ROOT / "docker" / "Dockerfile"


# ---- the entry point and health check scripts ----------------------------------------------


def test_uvicorn_command(entrypoint: Any) -> None:
    argv = entrypoint.uvicorn_argv("items", "172.29.84.10")
    assert argv[:2] == ["uvicorn", "items.main:app"]
    joined = " ".join(argv)
    assert "--host 0.0.0.0" in joined and f"--port {entrypoint.PORT}" in joined
    assert "--proxy-headers" in argv
    assert argv[argv.index("--forwarded-allow-ips") + 1] == "172.29.84.10"
    assert "--no-server-header" in argv  # no `Server: uvicorn`


@pytest.fixture
def sigterm_kept() -> Iterator[None]:
    """main() installs its SIGTERM handler: give this process its own back afterwards."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


class _Exec(Exception):
    """os.execvp reached: the process would have become this command."""


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["serve"], "uvicorn"),  # the Helm chart's main container: no database needed
        (["alembic", "current"], "alembic"),  # any other command runs as given
    ],
)
@pytest.mark.usefixtures("sigterm_kept")
def test_entrypoint_phases(
    entrypoint: Any, monkeypatch: pytest.MonkeyPatch, argv: list[str], command: str
) -> None:
    def record(file: str, args: list[str]) -> None:
        raise _Exec(args)

    monkeypatch.setattr(os, "execvp", record)
    monkeypatch.setenv("SERVICE", "items")
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(_Exec) as executed:
        entrypoint.main(argv)
    assert executed.value.args[0][0] == command


@pytest.mark.usefixtures("sigterm_kept")
def test_entrypoint_migrate_phase_needs_a_database_url(
    entrypoint: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVICE", "items")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert entrypoint.main(["migrate"]) == 1


def test_forwarded_allow_ips_is_trusted_by_the_installed_uvicorn() -> None:
    """The value compose passes is understood by uvicorn: that address only, nobody else."""
    from uvicorn.middleware.proxy_headers import _TrustedHosts

    trusted = _TrustedHosts("172.29.84.10")
    assert "172.29.84.10" in trusted
    assert "172.29.84.1" not in trusted and "172.29.84.130" not in trusted


def test_development_values_are_refused_in_production_only(entrypoint: Any) -> None:
    production = {"ENVIRONMENT": "production", "FIRST_ADMIN_PASSWORD": "x-dev-only-x"}
    with pytest.raises(entrypoint.StartupError, match="FIRST_ADMIN_PASSWORD"):
        entrypoint.refuse_development_values(production)
    entrypoint.refuse_development_values({**production, "ENVIRONMENT": "development"})
    entrypoint.refuse_development_values({"ENVIRONMENT": "production", "A": "fine"})


def test_database_url_becomes_asyncpg_arguments(entrypoint: Any) -> None:
    arguments = entrypoint.connect_arguments(
        "postgresql+asyncpg://items:s3cr%40t@postgres:5432/items"
    )
    assert arguments == {
        "host": "postgres",
        "port": 5432,
        "user": "items",
        "password": "s3cr@t",
        "database": "items",
    }


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        status = 200 if self.path == "/api/v1/items/health" else 503
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_script(
    healthcheck: Any, http_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # must be ignored
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    assert (
        healthcheck.health_url("items")
        == f"http://127.0.0.1:{healthcheck.PORT}/api/v1/items/health"
    )
    assert healthcheck.check(healthcheck.health_url("items", http_server))
    assert not healthcheck.check(healthcheck.health_url("users", http_server))  # 503
    assert not healthcheck.check(healthcheck.health_url("items", free_port()), timeout=1)


def test_healthcheck_copies_into_the_image(runtime: Stage) -> None:
    copied = " ".join(c.arguments for c in runtime.all("COPY"))
    assert "docker/entrypoint.py" in copied and "docker/healthcheck.py" in copied
    assert Path(REPO_ROOT / "docker" / "healthcheck.py").is_file()
