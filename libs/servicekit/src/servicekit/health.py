"""Liveness and readiness: `/health` says the process runs, `/ready` that its dependencies do.

For an orchestrator: `/health` is the liveness probe (restart the process when it fails),
`/ready` the readiness probe (send it no traffic while it fails). `/ready` asks PostgreSQL
and Redis on connections of its own, never the pools requests use, each within
DEPENDENCY_TIMEOUT: a replica whose pools are full (a burst, a hot row) stays ready, and
sheds what it cannot take with 503 + Retry-After, while a replica that cannot reach a
dependency leaves rotation. When a dependency is down every replica leaves at once, which
is the truth: a restart would not help (so never restart on `/ready`), and a balancer that
keeps routing to them anyway gets each service's own 503s naming what is down.
"""

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])
Probe = Callable[[Request], Awaitable[bool]]


@router.get("/health", summary="The process is up")
async def health() -> dict[str, str]:
    return {"status": "ok"}


async def _database_answers(request: Request) -> bool:
    await request.app.state.database.ping(request.app.state.settings.DEPENDENCY_TIMEOUT)
    return True


async def _redis_answers(request: Request) -> bool:
    return bool(await request.app.state.redis_probe.ping())


async def _check(probe: Probe, request: Request, seconds: float) -> str:
    try:
        async with asyncio.timeout(seconds):
            await probe(request)
    except Exception:  # noqa: BLE001 - any failure means "not ready"; the name says which
        return "unavailable"
    return "ok"


@router.get(
    "/ready",
    summary="The database and Redis answer",
    responses={503: {"description": "A dependency is down; `checks` names it"}},
)
async def ready(request: Request) -> JSONResponse:
    timeout = request.app.state.settings.DEPENDENCY_TIMEOUT
    database, redis = await asyncio.gather(
        _check(_database_answers, request, timeout), _check(_redis_answers, request, timeout)
    )
    checks = {"database": database, "redis": redis}
    down = [name for name, state in checks.items() if state != "ok"]
    if down:
        detail = f"Not ready: {', '.join(down)} unavailable"
        return JSONResponse({"detail": detail, "checks": checks}, status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})
