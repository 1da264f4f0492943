"""Container health check: GET /api/v1/$SERVICE/health on this container answers 200.

The slim base image has no curl or wget; this needs only the standard library. It checks
liveness (/health), not readiness (/ready): a PostgreSQL or Redis outage must not mark every
container unhealthy at once, and /ready already answers 503 to whoever asks.
"""

import os
import sys
import urllib.error
import urllib.request

#: Must match docker/entrypoint.py's PORT (tests-deploy checks it).
PORT = 8000


def health_url(service: str, port: int = PORT) -> str:
    return f"http://127.0.0.1:{port}/api/v1/{service}/health"


def check(url: str, timeout: float = 3.0) -> bool:
    # No proxy: HTTP(S)_PROXY set for the service must not capture a call to itself.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return False


if __name__ == "__main__":
    sys.exit(0 if check(health_url(os.environ["SERVICE"])) else 1)
