"""`create_app`: the one call that builds a service's app: its database and Redis clients,
token verifier, event workers, logging, middleware, error answers, health and docs."""

import gc
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp

from servicekit.auth import KeySource, build_verifier
from servicekit.background import Worker, running
from servicekit.db import Database
from servicekit.docs import install_docs
from servicekit.errors import install_error_handlers
from servicekit.events.envelope import Handler
from servicekit.events.workers import build_consumer, build_relay
from servicekit.gateway_pages import router as gateway_pages_router
from servicekit.health import router as health_router
from servicekit.logging import configure_logging
from servicekit.methods import install_method_answers
from servicekit.metrics import serve_metrics
from servicekit.middleware import RequestContextMiddleware
from servicekit.oauth import install_bearer_challenges
from servicekit.openapi import install_platform_responses
from servicekit.redis import create_redis
from servicekit.revocation import RevocationChecks
from servicekit.settings import ServiceSettings
from servicekit.tracing import configure_tracing

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class ServiceApp(FastAPI):
    """FastAPI with only the ASGI layers a service needs around its routes.

    FastAPI wraps the app in five layers of its own besides ours: Starlette's error middleware
    (`RequestContextMiddleware` answers unexpected errors itself, with the request id), FastAPI's
    exception telemetry and body limit (unused: no telemetry configured, and our own limit),
    the exception handlers and the exit stack for uploaded files (ours opens it). Each is a
    call per request; what is left is ours, then the exception handlers, then the routes.
    """

    def build_middleware_stack(self) -> ASGIApp:
        handlers = {
            key: handler
            for key, handler in self.exception_handlers.items()
            if key not in (500, Exception)
        }
        if len(handlers) != len(self.exception_handlers):
            raise TypeError("unexpected errors are RequestContextMiddleware's to answer")
        app: ASGIApp = ExceptionMiddleware(self.router, handlers=handlers, debug=self.debug)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app


def create_app(
    settings: ServiceSettings,
    *,
    routers: Sequence[APIRouter],
    title: str,
    description: str = "",
    lifespan: Lifespan | None = None,
    key_source: KeySource | None = None,
    publishes_events: bool = False,
    event_handlers: Mapping[str, Handler] | None = None,
) -> FastAPI:
    """Build a service app serving every route under `/api/v1/<service>`.

    `lifespan` runs inside the shared one, so the database and Redis are ready when
    it starts and still open when it ends. Tokens are verified with keys from the
    auth service's JWKS unless `key_source` says otherwise (the auth service itself).
    A service that `publishes_events` runs the outbox relay; one with `event_handlers`
    consumes the stream through its own consumer group (unless RUN_EVENT_WORKERS=false).
    """
    configure_logging(settings.SERVICE_NAME, settings.LOG_LEVEL)
    configure_tracing(settings.SERVICE_NAME)
    prefix = settings.api_prefix

    @asynccontextmanager
    async def shared_lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.database = Database(
            settings.DATABASE_URL,
            pool_size=settings.DATABASE_POOL_SIZE,
            max_overflow=settings.DATABASE_MAX_OVERFLOW,
            read_pool_size=settings.DATABASE_READ_POOL_SIZE,
            pool_timeout=settings.DATABASE_POOL_TIMEOUT,
            lock_timeout=settings.DATABASE_LOCK_TIMEOUT,
            statement_timeout=settings.DATABASE_STATEMENT_TIMEOUT,
        )
        await app.state.database.open()
        app.state.redis = create_redis(
            settings.REDIS_URL,
            timeout=settings.DEPENDENCY_TIMEOUT,
            pool_size=settings.REDIS_POOL_SIZE,
            pool_timeout=settings.DATABASE_POOL_TIMEOUT,
        )
        # Readiness asks Redis on a connection of its own: a full pool must not fail it.
        app.state.redis_probe = create_redis(
            settings.REDIS_URL, timeout=settings.DEPENDENCY_TIMEOUT, pool_size=1
        )
        app.state.revocations = RevocationChecks(app.state.redis)
        app.state.token_verifier = build_verifier(settings, key_source)
        workers: list[Worker] = []
        if settings.RUN_EVENT_WORKERS and publishes_events:
            workers.append(build_relay(app).run)
        if settings.RUN_EVENT_WORKERS and event_handlers:
            workers.append(build_consumer(app, event_handlers).run)
        metrics_server = serve_metrics(
            app,
            publishes_events=publishes_events,
            handled_types=list(event_handlers or ()),
            workers=workers,
        )
        try:
            async with AsyncExitStack() as stack:
                if lifespan is not None:
                    await stack.enter_async_context(lifespan(app))
                await stack.enter_async_context(running(*workers))
                # What exists now (modules, models, routes, pools) lives as long as the process;
                # frozen, it is no longer scanned by full collections, which under load stalled
                # every request in flight (bench/http_reads.py shows the tail latency).
                gc.freeze()
                yield
        finally:
            if metrics_server is not None:
                metrics_server.stop()
            await app.state.redis.aclose()
            await app.state.redis_probe.aclose()
            await app.state.database.dispose()

    app = ServiceApp(
        title=title,
        description=description,
        version="1.0.0",
        docs_url=None,  # served by install_docs, with local assets
        redoc_url=None,
        openapi_url=f"{prefix}/openapi.json",
        lifespan=shared_lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    install_bearer_challenges(app)
    install_method_answers(app)
    install_docs(app, prefix)
    install_platform_responses(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.MAX_BODY_BYTES)
    app.include_router(health_router, prefix=prefix)
    app.include_router(gateway_pages_router)
    for router in routers:
        app.include_router(router, prefix=prefix)
    return app
