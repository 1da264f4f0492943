"""`python -m devstack`: run the native stack in the foreground (what `make dev` calls)."""

import argparse
import sys

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
        help="admin DSN of the PostgreSQL server to use",
    )
    parser.add_argument("--redis", default=StackConfig.redis_url, help="Redis URL to use")
    args = parser.parse_args()
    config = StackConfig(
        postgres_admin_dsn=args.postgres, redis_url=args.redis, private_servers=args.private
    )
    return run_foreground(config)


if __name__ == "__main__":
    sys.exit(main())
