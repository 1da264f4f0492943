"""`docker compose watch`: every save lands where the image runs it, and restarts its service.

The image installs each service and servicekit as packages into the venv (docker/Dockerfile,
non-editable), so a watch rule syncs a package's source directory over the installed copy.
A rule that named a path the image does not run from would sync in vain: these tests check
each target against the Dockerfile (the venv's path and Python version, the migrations' copy).
"""

# ruff: noqa: S101 - pytest assertions (pyproject's per-file-ignores predate tests-deploy)

import re
from typing import Any

import pytest
from deploykit import REPO_ROOT, SERVICES, load_compose_raw, parse_dockerfile


def site_packages() -> str:
    """Where the runtime image's venv holds its packages: UV_PROJECT_ENVIRONMENT, Python X.Y."""
    dockerfile = parse_dockerfile()
    env = " ".join(i.arguments for i in dockerfile.stage("builder").all("ENV"))
    venv = re.search(r"UV_PROJECT_ENVIRONMENT=(\S+)", env)
    python = re.search(r"python:(\d+\.\d+)", dockerfile.global_args["PYTHON_IMAGE"])
    assert venv and python
    return f"{venv.group(1)}/lib/python{python.group(1)}/site-packages"


def watch_rules(name: str) -> list[dict[str, Any]]:
    return load_compose_raw()["services"][name]["develop"]["watch"]


@pytest.mark.parametrize("name", SERVICES)
def test_saving_code_syncs_it_over_the_installed_package_and_restarts(name: str) -> None:
    synced = {
        (rule["path"], rule["target"])
        for rule in watch_rules(name)
        if rule["action"] == "sync+restart"
    }
    packages = site_packages()
    assert (f"./services/{name}/src/{name}", f"{packages}/{name}") in synced
    assert ("./libs/servicekit/src/servicekit", f"{packages}/servicekit") in synced
    runtime = parse_dockerfile().stage("runtime")
    copies = {i.arguments.split()[-1] for i in runtime.all("COPY")}
    assert "/app/service/migrations" in copies
    assert (f"./services/{name}/migrations", "/app/service/migrations") in synced


@pytest.mark.parametrize("name", SERVICES)
def test_every_watched_path_exists_and_a_lock_change_rebuilds(name: str) -> None:
    rules = watch_rules(name)
    for rule in rules:
        assert (REPO_ROOT / rule["path"]).exists(), rule
    assert {"action": "rebuild", "path": "./uv.lock"} in rules
