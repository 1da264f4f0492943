"""deploy/swarm/stack.yml against compose.yaml, the gateway files and the secrets script.

The stack runs on a real two-node swarm in tests-swarm; these checks need no engine and say
what a reviewer of the stack file would check by eye.
"""

# ruff: noqa: S101 - pytest assertions (pyproject's per-file-ignores predate tests-deploy)

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploykit import (
    REPO_ROOT,
    SERVICES,
    environment_of,
    interpolate,
    load_module,
    render_dynamic_config,
)

STACK_FILE = REPO_ROOT / "deploy" / "swarm" / "stack.yml"
INFRASTRUCTURE = ("traefik", "postgres", "redis", "mailpit")


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    document = yaml.safe_load(STACK_FILE.read_text(encoding="utf-8"))
    return dict(interpolate(document, {}))


def test_the_stack_runs_the_compose_services_on_the_same_images(
    stack: dict[str, Any], compose: dict[str, Any]
) -> None:
    # Monitoring (Prometheus, Grafana) runs in compose only, for now.
    assert set(stack["services"]) == set(compose["services"]) - {"prometheus", "grafana"}
    for name in INFRASTRUCTURE:
        assert stack["services"][name]["image"] == compose["services"][name]["image"], name
    for name in SERVICES:
        assert stack["services"][name]["image"] == "platform-" + name + ":latest"


def test_no_key_that_docker_stack_deploy_refuses_or_ignores(stack: dict[str, Any]) -> None:
    for name, service in stack["services"].items():
        assert not {"build", "depends_on", "restart", "container_name"} & set(service), name


@pytest.mark.parametrize("name", SERVICES)
def test_services_update_start_first_gated_on_health_with_rollback(
    stack: dict[str, Any], name: str
) -> None:
    service = stack["services"][name]
    deploy = service["deploy"]
    assert deploy["update_config"]["order"] == "start-first"
    assert deploy["update_config"]["failure_action"] == "rollback"
    assert deploy["rollback_config"]["order"] == "start-first"
    assert deploy["restart_policy"]["condition"] == "any"
    assert int(deploy["replicas"]) >= 2
    assert deploy["resources"]["limits"]["memory"]
    assert service["healthcheck"]["test"] == ["CMD", "python", "/app/docker/healthcheck.py"]


def test_every_service_is_dns_round_robin_and_the_data_stays_on_its_node(
    stack: dict[str, Any],
) -> None:
    for name, service in stack["services"].items():
        assert service["deploy"]["endpoint_mode"] == "dnsrr", f"{name}: no IPVS here"
        assert "healthcheck" in service or name == "mailpit", name
    for name in ("postgres", "redis", "mailpit"):
        placement = stack["services"][name]["deploy"]["placement"]
        assert placement["constraints"] == ["node.labels.platform.data == true"], name
    traefik = stack["services"]["traefik"]
    assert traefik["deploy"]["placement"]["constraints"] == ["node.labels.platform.edge == true"]
    assert [port["mode"] for port in traefik["ports"]] == ["host"]


def test_the_gateway_runs_on_the_gateway_files_and_connects_per_request(
    stack: dict[str, Any], compose: dict[str, Any]
) -> None:
    compose_traefik = compose["services"]["traefik"]
    traefik = stack["services"]["traefik"]
    assert traefik["entrypoint"] == compose_traefik["entrypoint"]
    assert traefik["healthcheck"]["test"] == compose_traefik["healthcheck"]["test"]
    mounted = {
        config["target"]: STACK_FILE.parent / stack["configs"][config["source"]]["file"]
        for config in traefik["configs"]
    }
    gateway = REPO_ROOT / "gateway"
    assert {target: path.resolve() for target, path in mounted.items()} == {
        f"/etc/traefik/{path.name}": path
        for path in (gateway / "traefik.yml", gateway / "dynamic.yml", gateway / "start.sh",
                     gateway / "healthcheck.sh")
    }  # fmt: skip
    environment = environment_of(traefik)
    assert environment["GATEWAY_UPSTREAM_IDLE_CONNS"] == "-1"
    http = render_dynamic_config((gateway / "dynamic.yml").read_text(), environment)["http"]
    assert http["serversTransports"]["upstreams"]["maxIdleConnsPerHost"] == -1
    for name in SERVICES:
        assert http["services"][name]["loadBalancer"]["serversTransport"] == "upstreams"
    # Elsewhere, connections stay alive (compose and the native stack set nothing).
    default = render_dynamic_config((gateway / "dynamic.yml").read_text(), {})["http"]
    assert default["serversTransports"]["upstreams"]["maxIdleConnsPerHost"] > 0


def test_every_secret_the_stack_names_is_written_by_swarm_secrets(
    stack: dict[str, Any], generated_root: Path, tmp_path: Path
) -> None:
    swarm_secrets = load_module("scripts/swarm_secrets.py")
    env = swarm_secrets.read_env(generated_root / ".env")
    key = (generated_root / "secrets" / "auth_private_key.pem").read_bytes()
    files = swarm_secrets.secret_files(env, key, "postgres")
    named = {Path(secret["file"]).name for secret in stack["secrets"].values()}
    assert named == set(files)
    for name in SERVICES:
        url = files[f"{name}_database_url"].decode()
        assert (
            url
            == f"postgresql+asyncpg://{name}:{env[f'{name.upper()}_DB_PASSWORD']}@postgres:5432/{name}"
        )
        # Each service gets its own database URL, as DATABASE_URL, and no other secret of a role.
        targets = {s["source"]: s["target"] for s in stack["services"][name]["secrets"]}
        assert targets[f"{name}_database_url"] == "DATABASE_URL"
        assert not {s for s in targets if s.endswith("_database_url")} - {f"{name}_database_url"}


def test_secrets_env_exports_upper_case_secrets_and_runs_the_entry_point(tmp_path: Path) -> None:
    (tmp_path / "DATABASE_URL").write_text("postgresql+asyncpg://items:s3cret@postgres/items")
    (tmp_path / "auth_private_key").write_text("-----BEGIN PRIVATE KEY-----")
    result = subprocess.run(
        ["/bin/sh", str(REPO_ROOT / "deploy" / "swarm" / "secrets-env.sh"), "env"],
        env={"SECRETS_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    exported = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert exported["DATABASE_URL"] == "postgresql+asyncpg://items:s3cret@postgres/items"
    # A file the process reads itself (AUTH_PRIVATE_KEY_FILE) never becomes a variable.
    assert "auth_private_key" not in exported
