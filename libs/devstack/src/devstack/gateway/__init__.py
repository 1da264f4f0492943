"""Native stand-in for Traefik: serves gateway/dynamic.yml without Docker or a Traefik binary.

It implements the subset of Traefik v3 the platform's dynamic configuration uses and refuses
everything else at start-up, so compose (real Traefik) and native runs behave alike::

    python -m devstack.gateway --config gateway/dynamic.yml --host 127.0.0.1 --port 8000

or, in-process::

    app = build_app(Path("gateway/dynamic.yml"), os.environ)
    await uvicorn.Server(uvicorn_config(app, "127.0.0.1", 8000)).serve()
"""

from devstack.gateway.app import Gateway, build_app, uvicorn_config
from devstack.gateway.config import ConfigError, GatewayConfig, load_config

__all__ = ["ConfigError", "Gateway", "GatewayConfig", "build_app", "load_config", "uvicorn_config"]
