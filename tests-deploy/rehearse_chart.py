"""Rehearse the Helm chart's pods on Docker, the part no cluster here can run.

    uv run python tests-deploy/rehearse_chart.py \\
        [--service-image 'platform-{service}:0.1.0'] [--traefik-image traefik:v3.7] \\
        [--postgres-image postgres:16-alpine] [--redis-image redis:7-alpine]

Renders the chart with its default values (`helm template`) and runs, on a Docker network of
its own, each service pod and the gateway pod as their specs say: the same environment (the
generated Secret's values, `$(VAR)` expanded as the kubelet does), uid and gid, read-only root
file system, no capabilities, no privilege escalation, the Secret, ConfigMap and emptyDir
volumes; each service's init container (`migrate`) to completion first, then the container.
PostgreSQL (with docker/postgres/init-databases.sh and the Secret's passwords) and Redis run
plainly under the names the default values expect. Then it asks every probe of every
container, and through the gateway logs the first admin in and lists items with the token.
Everything it started is removed at the end, pass or fail. The images must exist locally
(`docker build -f docker/Dockerfile --build-arg SERVICE=auth -t platform-auth:0.1.0 .`);
--mount-entrypoint runs this worktree's docker/entrypoint.py in images built before it.
Not rehearsed: the in-chart PostgreSQL and Redis (no postgres:16-alpine or redis:7-alpine
image on the machine it was written on), NetworkPolicies, Services' load balancing, the
kubelet's probe timing.
"""

# ruff: noqa: S603, S607 - docker with our own arguments

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deploykit import REPO_ROOT, SERVICES
from helmkit import container_environment, object_name, pod_spec, render, secret_data

PREFIX = f"rehearse-{os.getpid()}"

#: Run inside a service container: GET each URL until it answers (60 s), print status and body.
_PROBE = """
import json, sys, time, urllib.error, urllib.request
def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read(160).decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read(160).decode()
    except OSError as error:
        return None, repr(error)
for url in sys.argv[1:]:
    deadline = time.monotonic() + 60
    status, body = get(url)
    while status is None and time.monotonic() < deadline:
        time.sleep(1)
        status, body = get(url)
    print(json.dumps([status, url, body]))
"""

#: Run inside a service container: the first admin logs in through the gateway, lists items.
_JOURNEY = """
import json, sys, urllib.parse, urllib.request
gateway, email, password = sys.argv[1:]
form = urllib.parse.urlencode({"username": email, "password": password}).encode()
with urllib.request.urlopen(f"{gateway}/api/v1/auth/token", data=form, timeout=10) as response:
    token = json.load(response)["access_token"]
request = urllib.request.Request(
    f"{gateway}/api/v1/items", headers={"Authorization": f"Bearer {token}"}
)
with urllib.request.urlopen(request, timeout=10) as response:
    print(response.status, json.load(response))
"""


def docker(*arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *arguments], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise SystemExit(f"docker {' '.join(arguments[:3])} ...: {result.stderr.strip()}")
    return result


def security_arguments(spec: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """docker run flags for a container's securityContext (and its pod's)."""
    pod, own = spec["securityContext"], container["securityContext"]
    flags = ["--user", f"{pod['runAsUser']}:{pod['runAsGroup']}"]
    if own.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    if own.get("capabilities", {}).get("drop") == ["ALL"]:
        flags += ["--cap-drop", "ALL"]
    if own.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    return flags


def volume_arguments(
    spec: dict[str, Any],
    container: dict[str, Any],
    objects: dict[tuple[str, str], dict[str, Any]],
    scratch: Path,
) -> list[str]:
    """Secret and ConfigMap volumes as read-only files, emptyDirs as tmpfs."""
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    flags: list[str] = []
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            flags += ["--tmpfs", f"{mount['mountPath']}:mode=1777"]  # as emptyDir: 0777
            continue
        if "secret" in volume:
            data = secret_data(objects["Secret", volume["secret"]["secretName"]])
            files = {item["path"]: data[item["key"]] for item in volume["secret"]["items"]}
            mode = volume["secret"].get("defaultMode", 0o644)
        else:
            files = dict(objects["ConfigMap", volume["configMap"]["name"]]["data"])
            mode = 0o644
        directory = Path(tempfile.mkdtemp(dir=scratch))
        directory.chmod(0o755)
        for name, content in files.items():
            path = directory / name
            path.write_text(content)
            path.chmod(mode)
            os.chown(path, 0, spec["securityContext"].get("fsGroup", 0))  # as fsGroup does
        flags += ["-v", f"{directory}:{mount['mountPath']}:ro"]
    return flags


def environment_arguments(
    container: dict[str, Any], secrets: dict[str, dict[str, str]]
) -> list[str]:
    flags: list[str] = []
    for name, value in container_environment(container, secrets).items():
        flags += ["-e", f"{name}={value}"]
    return flags


@contextmanager
def network() -> Iterator[str]:
    """A network of the rehearsal's own; every container on it is removed afterwards."""
    name = f"{PREFIX}-net"
    docker("network", "create", name)
    try:
        yield name
    finally:
        listed = docker("ps", "-aq", "--filter", f"name={PREFIX}-", check=False).stdout.split()
        if listed:
            docker("rm", "-f", "-v", *listed, check=False)
        docker("network", "rm", name, check=False)


def wait_for_postgres(container: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ready = ["pg_isready", "-h", "127.0.0.1", "-U", "postgres"]
        if docker("exec", container, *ready, check=False).returncode == 0:
            return
        time.sleep(1)
    raise SystemExit("PostgreSQL did not start")


def rehearse(arguments: argparse.Namespace, scratch: Path) -> list[str]:
    """Run the pods; returns the failures (empty: all passed)."""
    rendered = render()
    objects = {(obj["kind"], obj["metadata"]["name"]): obj for obj in rendered.objects}
    secrets = {name: secret_data(obj) for (kind, name), obj in objects.items() if kind == "Secret"}
    passwords = secrets[object_name("secrets")]
    failures: list[str] = []
    with network() as net:
        init_script = REPO_ROOT / "docker" / "postgres" / "init-databases.sh"
        database_env = ["-e", "POSTGRES_PASSWORD=rehearsal"]
        for name in SERVICES:
            password = passwords[f"{name}-database-password"]
            database_env += ["-e", f"{name.upper()}_DB_PASSWORD={password}"]
        docker("run", "-d", "--name", f"{PREFIX}-postgresql", "--network", net,
               "--network-alias", "postgresql", *database_env,
               "-v", f"{init_script}:/docker-entrypoint-initdb.d/10-init-databases.sh:ro",
               arguments.postgres_image)  # fmt: skip
        docker("run", "-d", "--name", f"{PREFIX}-redis", "--network", net,
               "--network-alias", "redis", arguments.redis_image)  # fmt: skip
        wait_for_postgres(f"{PREFIX}-postgresql")
        probes: list[str] = []
        for component in (*SERVICES, "gateway"):
            deployment = objects["Deployment", object_name(component)]
            spec = pod_spec(deployment)
            image_override = (
                arguments.traefik_image
                if component == "gateway"
                else arguments.service_image.format(service=component)
            )
            extra = []
            if arguments.mount_entrypoint and component != "gateway":
                entrypoint = REPO_ROOT / "docker" / "entrypoint.py"
                extra = ["-v", f"{entrypoint}:/app/docker/entrypoint.py:ro"]
            for init in spec.get("initContainers", []):
                started = time.monotonic()
                result = docker("run", "--rm", "--name", f"{PREFIX}-{component}-{init['name']}",
                                "--network", net, *security_arguments(spec, init),
                                *volume_arguments(spec, init, objects, scratch),
                                *environment_arguments(init, secrets), *extra, image_override,
                                *init.get("args", []), check=False)  # fmt: skip
                took = time.monotonic() - started
                print(f"{component}: init container {init['name']} exit {result.returncode} "
                      f"in {took:.1f}s")  # fmt: skip
                if result.returncode != 0:
                    failures.append(f"{component} {init['name']}: {result.stderr[-800:]}")
            [container] = spec["containers"]
            docker("run", "-d", "--name", f"{PREFIX}-{component}", "--network", net,
                   "--network-alias", object_name(component), *security_arguments(spec, container),
                   *volume_arguments(spec, container, objects, scratch),
                   *environment_arguments(container, secrets), *extra, image_override,
                   *container.get("args", []))  # fmt: skip
            ports = {port["name"]: port["containerPort"] for port in container["ports"]}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                get = container[probe]["httpGet"]
                probes.append(f"http://{object_name(component)}:{ports[get['port']]}{get['path']}")
        asker = f"{PREFIX}-{SERVICES[-1]}"
        for line in docker("exec", asker, "python", "-c", _PROBE, *probes).stdout.splitlines():
            status, url, body = json.loads(line)
            print(f"{status} {url} {body[:80]}")
            if status != 200:
                failures.append(f"probe {url}: {status} {body}")
        gateway = f"http://{object_name('gateway')}:8000"
        admin = [gateway, "admin@example.com", passwords["first-admin-password"]]
        journey = docker("exec", asker, "python", "-c", _JOURNEY, *admin, check=False)
        print("journey through the gateway:", journey.stdout.strip() or journey.stderr[-800:])
        if journey.returncode != 0:
            failures.append(f"journey: {journey.stderr[-800:]}")
        if failures:
            for component in (*SERVICES, "gateway"):
                logs = docker("logs", "--tail", "20", f"{PREFIX}-{component}", check=False)
                print(f"---- {component}\n{logs.stdout}{logs.stderr}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service-image", default="platform-{service}:0.1.0")
    parser.add_argument("--traefik-image", default="traefik:v3.7")
    parser.add_argument("--postgres-image", default="postgres:16-alpine")
    parser.add_argument("--redis-image", default="redis:7-alpine")
    parser.add_argument("--mount-entrypoint", action="store_true")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        failures = rehearse(arguments, Path(scratch))
    print("rehearsal:", "FAILED\n  " + "\n  ".join(failures) if failures else "every pod passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
