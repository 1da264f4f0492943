"""The Helm chart (deploy/helm/platform) as rendered objects: helm lint and template, the
environment a container would see, and the objects' cross-references.

helm comes from scripts/bootstrap.sh (.dev/bin/helm); no cluster is involved anywhere.
"""

# ruff: noqa: S101 - pytest assertions (pyproject's per-file-ignores predate tests-deploy)

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from deploykit import REPO_ROOT

CHART = REPO_ROOT / "deploy" / "helm" / "platform"
PRODUCTION_VALUES = CHART / "ci" / "production-values.yaml"
RELEASE = "rel"

#: The value sets every check runs with: the defaults, a production-like file, and the
#: in-chart PostgreSQL and Redis (with a Redis password) for trying it out.
VALUE_SETS: dict[str, tuple[str, ...]] = {
    "default": (),
    "production": ("--values", str(PRODUCTION_VALUES)),
    "in-chart": (
        "--set", "postgresql.enabled=true",
        "--set", "redis.inChart.enabled=true",
        "--set", "redis.auth.enabled=true",
        "--set", "services.notifications.smtp.host=mail.example.com",
        "--set", "services.notifications.smtp.username=platform",
    ),
}  # fmt: skip


def helm_binary() -> str:
    """The helm bootstrap installs; a helm on PATH only where bootstrap linked none."""
    installed = REPO_ROOT / ".dev" / "bin" / "helm"
    found = str(installed) if installed.exists() else shutil.which("helm")
    assert found, "no helm: run `make bootstrap` (scripts/bootstrap.sh installs it)"
    return found


def helm(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the bootstrapped binary, our own arguments
        [helm_binary(), *arguments], capture_output=True, text=True, timeout=120, check=False
    )


def render(values: Sequence[str] = (), *, chart: Path = CHART) -> Rendered:
    """`helm template` of the chart, in a namespace of its own, as parsed objects."""
    result = helm("template", RELEASE, str(chart), "--namespace", "platform", *values)
    assert result.returncode == 0, result.stderr
    documents = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return Rendered(result.stdout, documents)


@dataclass(frozen=True)
class Rendered:
    text: str
    objects: list[dict[str, Any]]

    def of_kind(self, *kinds: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] in kinds]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        [found] = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        return found

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        found = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        return found[0] if found else None

    def workloads(self) -> list[dict[str, Any]]:
        return self.of_kind("Deployment", "StatefulSet")

    def component(self, kind: str, component: str) -> dict[str, Any]:
        [found] = [
            obj
            for obj in self.of_kind(kind)
            if obj["metadata"]["labels"]["app.kubernetes.io/component"] == component
        ]
        return found


def object_name(component: str) -> str:
    return f"{RELEASE}-platform-{component}"


def pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def containers(workload: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def secret_data(secret: Mapping[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


_DEPENDENT_VARIABLE = re.compile(r"\$\((\w+)\)")


def container_environment(
    container: Mapping[str, Any], secrets: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """The variables the container's process gets, as the kubelet builds them: secretKeyRef
    values looked up, `$(NAME)` replaced by a variable defined earlier in the list."""
    environment: dict[str, str] = {}
    for variable in container.get("env", []):
        if "valueFrom" in variable:
            reference = variable["valueFrom"]["secretKeyRef"]
            value = secrets[reference["name"]][reference["key"]]
        else:
            value = _DEPENDENT_VARIABLE.sub(
                lambda match: environment.get(match.group(1), match.group(0)), variable["value"]
            )
        environment[variable["name"]] = value
    return environment
