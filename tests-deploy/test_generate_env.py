"""scripts/generate_env.py: a complete .env and a usable signing key, never overwritten silently."""

# ruff: noqa: S101 - pytest assertions (pyproject's per-file-ignores predate tests-deploy)

import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from deploykit import ENV_EXAMPLE, REPO_ROOT, load_compose, parse_env_file

from servicekit.keys import algorithm_of, load_private_key


def test_env_is_complete_and_holds_no_placeholder(
    generated_root: Path, env_values: dict[str, str]
) -> None:
    assert set(env_values) == set(parse_env_file(ENV_EXAMPLE.read_text()))
    for name, value in env_values.items():
        assert value and "dev-only" not in value, name
        if name.endswith("PASSWORD"):
            assert value.isalnum() and len(value) >= 32, f"{name}: alphanumeric, 32 characters"
    load_compose(env_values)  # every required variable present: compose would start
    # Optional settings stay documented (commented) in the generated file.
    assert "# PLATFORM_NET_PREFIX=172.29.84" in (generated_root / ".env").read_text()


def test_signing_key_is_an_rs256_pem(generated_root: Path, generate_env: Any) -> None:
    pem = (generated_root / generate_env.KEY_FILE).read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    key = load_private_key(pem)
    assert algorithm_of(key) == "RS256"  # the services' default AUTH_ALGORITHM
    assert key.key_size == 3072  # type: ignore[union-attr]


def test_permissions(generated_root: Path, generate_env: Any) -> None:
    mode = lambda path: stat.S_IMODE(path.stat().st_mode)  # noqa: E731
    assert mode(generated_root / ".env") == 0o600
    key = generated_root / generate_env.KEY_FILE
    assert mode(key.parent) == 0o700, "the secrets directory is private to its owner"
    # Readable by the container's uid 10001 through compose's bind mount.
    assert mode(key) == 0o644


def test_each_run_draws_new_secrets(tmp_path: Path, generate_env: Any) -> None:
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env.example")
    generate_env.generate(tmp_path)
    first = parse_env_file((tmp_path / ".env").read_text())
    first_key = (tmp_path / generate_env.KEY_FILE).read_bytes()
    generate_env.generate(tmp_path, force=True)
    second = parse_env_file((tmp_path / ".env").read_text())
    assert first["AUTH_DB_PASSWORD"] != second["AUTH_DB_PASSWORD"]
    assert first_key != (tmp_path / generate_env.KEY_FILE).read_bytes()
    assert first["FIRST_ADMIN_EMAIL"] == second["FIRST_ADMIN_EMAIL"] == "admin@example.com"


@pytest.mark.parametrize("existing", [".env", "secrets/auth_private_key.pem"])
def test_refuses_to_overwrite_without_force(tmp_path: Path, existing: str) -> None:
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env.example")
    (tmp_path / existing).parent.mkdir(exist_ok=True)
    (tmp_path / existing).write_text("keep me")
    script = REPO_ROOT / "scripts" / "generate_env.py"
    refused = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, str(script), "--root", str(tmp_path)], capture_output=True, text=True
    )
    assert refused.returncode == 1
    assert "--force" in refused.stderr
    assert (tmp_path / existing).read_text() == "keep me"
    assert not (tmp_path / ".env").exists() or existing == ".env"
    forced = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, str(script), "--root", str(tmp_path), "--force"],
        capture_output=True,
        text=True,
    )
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / existing).read_text() != "keep me"
    assert "docker compose down -v" in forced.stderr
