"""Fixtures of the deployment checks: compose.yaml, docker/ and friends, without an engine.

`uv run pytest tests-deploy` reads compose.yaml, docker/, gateway/ and .env.example as they
are in the working tree, and a .env generated into a temporary directory by the same script
operators use (scripts/generate_env.py): never the developer's own .env. The database
rehearsal (test_database_startup.py) needs this machine's PostgreSQL server binaries, as
`make test` does already; the Helm chart checks (test_helm_chart.py) need helm, which
scripts/bootstrap.sh installs into .dev/bin. No Docker engine, no cluster.
"""

import importlib
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from servicekit.settings import ServiceSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploykit import ENV_EXAMPLE, SERVICES, load_compose, load_module, parse_env_file  # noqa: E402


@pytest.fixture(scope="session")
def generate_env() -> Any:
    return load_module("scripts/generate_env.py")


@pytest.fixture(scope="session")
def generated_root(tmp_path_factory: pytest.TempPathFactory, generate_env: Any) -> Path:
    """A directory holding .env.example plus the .env and key generated from it."""
    root = tmp_path_factory.mktemp("generated")
    shutil.copy(ENV_EXAMPLE, root / ".env.example")
    generate_env.generate(root)
    return root


@pytest.fixture(scope="session")
def env_values(generated_root: Path) -> dict[str, str]:
    return parse_env_file((generated_root / ".env").read_text())


@pytest.fixture(scope="session")
def compose(env_values: dict[str, str]) -> dict[str, Any]:
    """compose.yaml interpolated with the generated .env, as `docker compose` would."""
    return load_compose(env_values)


@pytest.fixture(scope="session")
def settings_classes() -> dict[str, type[ServiceSettings]]:
    """Each service's Settings class (importing the module also builds its default settings)."""
    return {name: importlib.import_module(f"{name}.settings").Settings for name in SERVICES}
