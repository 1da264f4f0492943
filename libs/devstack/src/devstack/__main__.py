"""`python -m devstack`: run the native stack in the foreground (what `make dev` calls)."""

import argparse
import sys
from pathlib import Path

from devstack.stack import StackConfig, run_foreground


def main() -> int:
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    parser.add_argument(
        "--private",
        action="store_true",
        help="bring a private PostgreSQL and Redis on free ports instead of the local ones",
    )
    parser.add_argument(
        "--postgres",
        default=StackConfig.postgres_admin_dsn,
        help="admin DSN of the PostgreSQL server to use (else our own, data in the state dir)",
    )
    parser.add_argument(
        "--redis", default=StackConfig.redis_url, help="Redis URL to use (else our own)"
    )
    parser.add_argument(
        "--free-ports",
        action="store_true",
        help="every port chosen by the OS instead of 8000-8004, 8025, 8080 and 1025",
    )
    parser.add_argument(
        "--state-dir", type=Path, default=StackConfig.state_dir, help="logs, keys, own servers"
    )
    parser.add_argument(
        "--no-reload", action="store_true", help="do not restart a service when its code changes"
    )
    args = parser.parse_args()
    config = StackConfig(
        postgres_admin_dsn=args.postgres,
        redis_url=args.redis,
        private_servers=args.private,
        state_dir=args.state_dir.absolute(),
        reload=not args.no_reload,
    )
    if args.free_ports:
        config.use_free_ports()
    return run_foreground(config)


if __name__ == "__main__":
    sys.exit(main())
