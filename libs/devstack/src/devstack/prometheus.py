"""The native stack's Prometheus: Debian's `prometheus` binary on monitoring/prometheus.yml.

The file is the one compose mounts; only each job's targets differ here (the loopback
ports of this stack), and the rule files' paths, made absolute. Without the binary the
stack runs without Prometheus (the bootstrap installs it for `make test`).
"""

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from devstack import REPO_ROOT

MONITORING_DIR = REPO_ROOT / "monitoring"
CONFIG = MONITORING_DIR / "prometheus.yml"


def prometheus_executable() -> str | None:
    return shutil.which("prometheus")


def native_config(
    targets: Mapping[str, str], *, scrape_interval: str, config: Path = CONFIG
) -> dict[str, Any]:
    """monitoring/prometheus.yml with each job scraping `targets[job]` (host:port)."""
    settings: dict[str, Any] = yaml.safe_load(config.read_text())
    settings["global"]["scrape_interval"] = scrape_interval
    settings["global"]["evaluation_interval"] = scrape_interval
    settings["rule_files"] = [str(config.parent / name) for name in settings["rule_files"]]
    jobs = {job["job_name"]: job for job in settings["scrape_configs"]}
    if set(jobs) != set(targets):
        raise KeyError(f"{config} scrapes {sorted(jobs)}, the stack runs {sorted(targets)}")
    for name, job in jobs.items():
        job["static_configs"] = [{"targets": [targets[name]]}]
    return settings


def prometheus_argv(
    executable: str,
    *,
    state_dir: Path,
    listen: str,
    targets: Mapping[str, str],
    scrape_interval: str,
) -> list[str]:
    """Write the native configuration into `state_dir` and return the command that runs it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    config_file = state_dir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(native_config(targets, scrape_interval=scrape_interval)))
    return [
        executable,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={state_dir / 'data'}",
        f"--web.listen-address={listen}",
        "--storage.tsdb.retention.time=1d",
        "--log.level=warn",
    ]
