"""monitoring/: Prometheus' configuration and alerting rules, checked and unit-tested by
promtool (Debian's `prometheus` package, which the bootstrap installs for `make test`)."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from devstack.prometheus import native_config

MONITORING = Path(__file__).resolve().parents[1] / "monitoring"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("promtool")
    assert executable, "no promtool: `make test` installs Debian's prometheus package"
    return subprocess.run(  # noqa: S603 - fixed argv
        [executable, *args], cwd=MONITORING, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    "args",
    [
        ("check", "rules", "alerts.yml"),
        ("test", "rules", "alerts.test.yml"),
        ("check", "config", "prometheus.yml"),
    ],
    ids=["check-rules", "test-rules", "check-config"],
)
def test_promtool_passes(args: tuple[str, ...]) -> None:
    result = promtool(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_rule_fails_its_unit_test(tmp_path: Path) -> None:
    """The unit tests can fail: with the outbox threshold raised, OutboxStuck fires too late."""
    rules = (MONITORING / "alerts.yml").read_text().replace("> 60", "> 600")
    (tmp_path / "alerts.yml").write_text(rules)
    shutil.copy(MONITORING / "alerts.test.yml", tmp_path)
    result = promtool("test", "rules", str(tmp_path / "alerts.test.yml"))
    assert result.returncode != 0 and "OutboxStuck" in result.stdout + result.stderr


def test_every_service_and_the_gateway_are_scraped_on_unpublished_ports() -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert targets == {
        "gateway": ["traefik:8080"],
        **{name: [f"{name}:9100"] for name in ("auth", "users", "items", "notifications")},
    }


def test_the_native_configuration_only_changes_targets_and_rule_paths() -> None:
    targets = {
        name: f"127.0.0.1:{port}"
        for port, name in enumerate(("gateway", "auth", "users", "items", "notifications"), 20000)
    }
    config = native_config(targets, scrape_interval="2s")
    assert {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    } == {name: [address] for name, address in targets.items()}
    assert config["rule_files"] == [str(MONITORING / "alerts.yml")]
    with pytest.raises(KeyError):
        native_config({"auth": "127.0.0.1:1"}, scrape_interval="2s")
