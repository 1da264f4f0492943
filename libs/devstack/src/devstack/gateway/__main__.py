"""``python -m devstack.gateway``: run the native gateway under uvicorn."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from devstack.gateway.app import build_app, uvicorn_config
from devstack.gateway.config import ConfigError

#: Exit status for a configuration the native gateway refuses.
EXIT_REFUSED_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, load the configuration (templated from the environment) and serve it."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack.gateway",
        description="Serve a Traefik dynamic configuration natively (the subset it implements).",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("gateway/dynamic.yml"),
        help="Traefik dynamic configuration file (default: %(default)s)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--log-level", default="info", help="uvicorn log level (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    # The gateway's own warnings (unreachable upstreams...) in uvicorn's style; WARNING keeps
    # httpx's per-request INFO lines out.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s:  %(message)s")

    try:
        app = build_app(args.config, os.environ)
    except ConfigError as exc:
        print(f"devstack.gateway: refusing {args.config}: {exc}", file=sys.stderr)
        return EXIT_REFUSED_CONFIG
    uvicorn.Server(uvicorn_config(app, args.host, args.port, log_level=args.log_level)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
