"""Write the Docker secrets of the swarm stack (deploy/swarm/stack.yml) from .env.

    uv run python scripts/swarm_secrets.py [--postgres-host HOST]

One file per secret in secrets/swarm/ (git-ignored, like .env): the signing key, each service's
DATABASE_URL (its own role and password), the first admin's password and the passwords
PostgreSQL creates its roles with. `docker stack deploy` reads them from there and stores them,
encrypted, in the swarm's Raft log; the files are needed only on the machine that deploys.
Prints the content hash the stack names its secrets with (SECRETS_HASH): secrets are
immutable, so new values need new names.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("auth", "users", "items", "notifications")
OUTPUT = Path("secrets") / "swarm"


def read_env(path: Path) -> dict[str, str]:
    """The KEY=VALUE lines of a compose .env (no quoting: generate_env.py writes none)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, separator, value = line.partition("=")
        if separator and not name.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
    return values


def secret_files(env: dict[str, str], private_key: bytes, postgres_host: str) -> dict[str, bytes]:
    """Each secret's name and content, as the stack file names them."""

    def required(name: str) -> str:
        if not env.get(name):
            raise KeyError(f"{name} is missing from .env: run scripts/generate_env.py")
        return env[name]

    files = {
        "auth_private_key": private_key,
        "first_admin_password": required("FIRST_ADMIN_PASSWORD").encode(),
        "postgres_password": required("POSTGRES_PASSWORD").encode(),
    }
    for service in SERVICES:
        password = required(f"{service.upper()}_DB_PASSWORD")
        files[f"{service}_db_password"] = password.encode()
        files[f"{service}_database_url"] = (
            f"postgresql+asyncpg://{service}:{password}@{postgres_host}:5432/{service}".encode()
        )
    return files


def write(root: Path, files: dict[str, bytes]) -> str:
    """Write the files (owner-only) and return their combined hash."""
    directory = root / OUTPUT
    directory.mkdir(parents=True, mode=0o700, exist_ok=True)
    digest = hashlib.sha256()
    for name, content in sorted(files.items()):
        path = directory / name
        path.touch(mode=0o600)
        os.chmod(path, 0o600)
        path.write_bytes(content)
        digest.update(name.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()[:12]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=REPO_ROOT)
    parser.add_argument(
        "--postgres-host",
        default="postgres",
        help="where the services reach PostgreSQL (default: the stack's own service)",
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        env = read_env(root / ".env")
        key = (root / "secrets" / "auth_private_key.pem").read_bytes()
        files = secret_files(env, key, args.postgres_host)
    except (OSError, KeyError) as exc:
        print(f"swarm_secrets: {exc}; run scripts/generate_env.py first", file=sys.stderr)
        return 1
    print(write(root, files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
