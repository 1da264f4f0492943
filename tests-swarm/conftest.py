"""One two-node swarm for the whole session, the platform deployed on it, removed at the end.

The session builds (or reuses, cached) the node image and the platform's images, starts two
nested engines, forms a swarm, loads the images into the nodes (node2 gets no database
image: it never runs one), writes fresh secrets, deploys deploy/swarm/stack.yml and waits
until every service has all its tasks running and the gateway answers. Tests then talk to
the gateway and the mailbox on node1, as clients of a real cluster would.

The figures measured on the way (convergence, rolling update, failover) are printed at the
end of the run and written to test-artifacts/swarm-figures.json.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from swarm import FIGURES, REPO_ROOT, STACK_FILE, NestedSwarm, run, wait_until  # noqa: E402

SERVICES = ("auth", "users", "items", "notifications")
#: The compose project the service images are built under: its own image names.
IMAGE_PROJECT = "platformswarm"
ARTIFACTS = REPO_ROOT / "test-artifacts"


def offline_images() -> dict[str, str]:
    """The stand-ins for the registry images (docker/offline), built when missing."""
    run("docker/offline/build.sh", timeout=900)
    output = run("docker/offline/build.sh", "--env")
    return dict(line.split("=", 1) for line in output.split())


def build_service_images(root: Path, image_env: dict[str, str]) -> None:
    """The four service images, as compose builds them (BuildKit's cache makes a rebuild quick)."""
    run(
        "docker",
        "compose",
        "--project-directory",
        str(REPO_ROOT),
        "--file",
        str(REPO_ROOT / "compose.yaml"),
        "--env-file",
        str(root / ".env"),
        "--project-name",
        IMAGE_PROJECT,
        "build",
        "--quiet",
        *SERVICES,
        env=image_env,
        timeout=900,
    )


def write_secrets(root: Path) -> tuple[dict[str, str], str]:
    """A fresh .env and signing key under `root`, the swarm's secret files from them; returns
    .env's values and the secrets' hash."""
    shutil.copy(REPO_ROOT / ".env.example", root / ".env.example")
    python = sys.executable
    run(python, str(REPO_ROOT / "scripts" / "generate_env.py"), "--root", str(root))
    secrets_hash = run(python, str(REPO_ROOT / "scripts" / "swarm_secrets.py"), "--root", str(root))
    env = dict(
        line.split("=", 1)
        for line in (root / ".env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    return env, secrets_hash.strip()


def stack_image(service: str, env: dict[str, str]) -> str:
    """The image the stack file gives `service`, its `${NAME:-default}` resolved with `env`."""
    image = yaml.safe_load(STACK_FILE.read_text())["services"][service]["image"]
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m[1]) or m[2], image)


def config_hash() -> str:
    """The hash make swarm-up names the configs with (configs are immutable)."""
    return run(str(REPO_ROOT / "scripts" / "swarm.sh"), "config-hash").strip()


class Platform:
    """The deployed stack, as its users and its operator see it."""

    def __init__(self, swarm: NestedSwarm, env: dict[str, str], deploy_env: dict[str, str]) -> None:
        self.swarm = swarm
        self.env = env
        self.deploy_env = deploy_env
        self.gateway_url = f"http://{swarm.manager.address}:8000"
        self.mailbox_url = f"http://{swarm.manager.address}:8025"

    def gateway_ready(self) -> bool:
        """Every service ready through the gateway, and the gateway's own answers in JSON."""
        try:
            with httpx.Client(base_url=self.gateway_url, timeout=5) as client:
                ready = all(
                    client.get(f"/api/v1/{name}/ready").status_code == 200 for name in SERVICES
                )
                missing = client.get("/nowhere")
                return ready and missing.status_code == 404 and "detail" in missing.json()
        except (httpx.HTTPError, ValueError):
            return False

    def e2e_env(self) -> dict[str, str]:
        return {
            "GATEWAY_URL": self.gateway_url,
            "MAILBOX_URL": self.mailbox_url,
            "E2E_ADMIN_EMAIL": self.env["FIRST_ADMIN_EMAIL"],
            "E2E_ADMIN_PASSWORD": self.env["FIRST_ADMIN_PASSWORD"],
            # This machine is the trusted proxy in front of the gateway (GATEWAY_TRUSTED_IPS):
            # each test client names its own address in X-Forwarded-For.
            "E2E_FORWARDED_FOR": "1",
        }

    def run_e2e(self, *selection: str, workers: int = 2) -> subprocess.CompletedProcess[str]:
        """tests-e2e (or the files named) against the swarm, in a pytest process of its own."""
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rs",
            "-n",
            str(workers),
            *(selection or ("tests-e2e",)),
            # The swarm stack runs no Prometheus, and its logs live in the nested engines:
            # metrics and traces are proven natively and against compose, not here.
            "--ignore=tests-e2e/test_observability.py",
        ]
        return subprocess.run(  # noqa: S603
            argv,
            cwd=REPO_ROOT,
            env={**os.environ, **self.e2e_env()},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )


@pytest.fixture(scope="session")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NestedSwarm]:
    node_image = run(str(REPO_ROOT / "tests-swarm" / "node" / "build.sh"), timeout=600).strip()
    test_swarm = NestedSwarm(node_image)
    try:
        test_swarm.create()
        test_swarm.form()
        yield test_swarm
    finally:
        test_swarm.remove()


@pytest.fixture(scope="session")
def platform(swarm: NestedSwarm, tmp_path_factory: pytest.TempPathFactory) -> Platform:
    root = tmp_path_factory.mktemp("swarm-secrets")
    env, secrets_hash = write_secrets(root)
    image_env = offline_images()
    build_service_images(root, image_env)
    service_images = [f"{IMAGE_PROJECT}-{name}:latest" for name in SERVICES]
    edge_and_data = [
        stack_image(name, image_env) for name in ("traefik", "postgres", "redis", "mailpit")
    ]
    started = time.monotonic()
    with ThreadPoolExecutor() as pool:  # the service images into both nodes, the rest into node1
        loads = [
            pool.submit(swarm.load_images, service_images, swarm.nodes),
            pool.submit(swarm.load_images, edge_and_data, swarm.nodes[:1]),
        ]
        for load in loads:
            load.result()
    FIGURES["images_loaded_s"] = round(time.monotonic() - started, 1)
    deploy_env = {
        **image_env,
        "IMAGE_PREFIX": f"{IMAGE_PROJECT}-",
        "SWARM_SECRETS_DIR": str(root / "secrets" / "swarm"),
        "SECRETS_HASH": secrets_hash,
        "CONFIG_HASH": config_hash(),
        "FIRST_ADMIN_EMAIL": env["FIRST_ADMIN_EMAIL"],
        # Clients reach node1 from this machine's address on the nodes' network.
        "GATEWAY_TRUSTED_IPS": f"{swarm.host_address}/32",
        # A lost task's unacknowledged events are claimed by a live one after 10 s.
        "EVENT_CLAIM_IDLE_MS": "10000",
    }
    swarm.deploy(deploy_env)
    platform = Platform(swarm, env, deploy_env)
    converged = wait_until("every task running", swarm.converged, timeout=300, interval=1)
    ready = converged + wait_until("the gateway answering", platform.gateway_ready, timeout=120)
    FIGURES["deploy_to_converged_s"] = round(converged, 1)
    FIGURES["deploy_to_gateway_ready_s"] = round(ready, 1)
    return platform


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("swarm figures")
    for name, value in FIGURES.items():
        terminalreporter.write_line(f"{name}: {value}")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "swarm-figures.json").write_text(json.dumps(FIGURES, indent=2) + "\n")
