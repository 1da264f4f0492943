"""Domain errors and the one place where every failure becomes an HTTP answer.

Views raise `ServiceError` subclasses (or FastAPI's `HTTPException`); nothing else
should reach a client. Unknown exceptions are answered with a generic 500 by
`RequestContextMiddleware` (so that answer still carries the request id); an
unreachable database or Redis becomes a 503 here, and so does a bounded wait that ran
out (a row lock, a statement, a full pool), with `Retry-After` and a detail saying which.
"""

import json
import logging
from typing import Any

import asyncpg
import redis.exceptions
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from servicekit.db import PoolExhausted, is_database_busy, is_database_unavailable, sqlstates
from servicekit.redis import RedisPoolExhausted

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """A failure the client caused or must know about; carries its own status code."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    detail: str = "Bad request"
    headers: dict[str, str] | None = None

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(detail or self.detail)
        if detail is not None:
            self.detail = detail
        if headers is not None:
            self.headers = headers


class BadRequest(ServiceError):
    status_code = status.HTTP_400_BAD_REQUEST


class Unauthorized(ServiceError):
    status_code = status.HTTP_401_UNAUTHORIZED
    detail = "Not authenticated"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServiceError):
    status_code = status.HTTP_403_FORBIDDEN
    detail = "Not allowed"


class NotFound(ServiceError):
    status_code = status.HTTP_404_NOT_FOUND
    detail = "Not found"


class Conflict(ServiceError):
    status_code = status.HTTP_409_CONFLICT
    detail = "Conflict"


class PreconditionFailed(ServiceError):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    detail = "The resource has changed; fetch it again"


class TooManyRequests(ServiceError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    detail = "Too many attempts; try again later"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class DependencyUnavailable(ServiceError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    detail = "A dependency is unavailable; try again shortly"


#: Seconds a client is asked to wait after a bounded wait ran out: the contention is
#: usually over by then, and a sooner retry would only add to it.
RETRY_AFTER_BUSY = "1"
AT_CAPACITY = "The service is at capacity; try again shortly"
CONTENDED = "The data is being changed by another request; try again shortly"
_BUSY_DETAILS = {
    "55P03": CONTENDED,  # lock_timeout
    "40P01": CONTENDED,  # deadlock_detected
    "40001": CONTENDED,  # serialization_failure
    "57014": "The database took too long to answer; try again shortly",  # statement_timeout
}


def busy_response(exc: BaseException) -> JSONResponse:
    """503 with Retry-After for a wait that ran out; the detail says on what."""
    detail = next(
        (_BUSY_DETAILS[state] for state in sqlstates(exc) if state in _BUSY_DETAILS), None
    )
    logger.warning("database busy", extra={"error": str(getattr(exc, "orig", None) or exc)})
    return JSONResponse(
        {"detail": detail or AT_CAPACITY}, 503, headers={"Retry-After": RETRY_AFTER_BUSY}
    )


#: Inputs nested deeper are not echoed: JSON parsing stops near Python's recursion limit, and
#: serialising such an input again, a few frames deeper inside the response, would overflow.
MAX_ECHOED_DEPTH = 32


def _shallow(value: Any) -> bool:
    """Whether lists and dicts nest at most `MAX_ECHOED_DEPTH` deep (checked without recursion)."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_ECHOED_DEPTH:
                return False
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return True


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError):
        return False
    return True


def _readable(value: Any) -> Any:
    """Make a location or message printable even when it holds a lone surrogate."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value if _json_safe(value) else repr(value)


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's 422 shape, minus what cannot be serialised (inf, lone surrogates, deep nests)."""
    errors = []
    for error in exc.errors():
        clean: dict[str, Any] = {
            "type": error.get("type"),
            "loc": [_readable(part) for part in error.get("loc", ())],
            "msg": _readable(error.get("msg", "")),
        }
        if "input" in error and _shallow(error["input"]) and _json_safe(error["input"]):
            clean["input"] = error["input"]
        ctx = error.get("ctx")
        if ctx:
            clean["ctx"] = {key: _readable(str(val)) for key, val in ctx.items()}
        errors.append(clean)
    return errors


def _is_refused_value(exc: Exception) -> bool:
    """PostgreSQL refused a value, or asyncpg could not even encode it (an int over 64 bits).

    `exc` is asyncpg's own error (from the read pool) or SQLAlchemy's wrapping of it.
    """
    if isinstance(exc, sa_exc.DataError | asyncpg.exceptions.DataError):
        return True
    return isinstance(
        getattr(getattr(exc, "orig", None), "__cause__", None), asyncpg.exceptions.DataError
    )


def _refused_value_errors(request: Request) -> list[dict[str, Any]]:
    """A value PostgreSQL refused, in FastAPI's 422 shape.

    The last resort behind the field types of `servicekit.fields`, which name the field: the
    driver's error does not say which input the value came from, only where it could have been.
    """
    has_body = request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers
    )
    return [
        {
            "type": "value_error",
            "loc": ["body" if has_body else "query"],
            "msg": "A value is out of range or malformed",
        }
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure to `{"detail": ...}` with the right status, once for all services."""

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": _readable(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_errors(exc)}, 422)

    @app.exception_handler(PoolExhausted)
    @app.exception_handler(sa_exc.TimeoutError)  # the engine's pool
    @app.exception_handler(RedisPoolExhausted)
    async def _pool_exhausted(_: Request, exc: Exception) -> JSONResponse:
        return busy_response(exc)

    @app.exception_handler(redis.exceptions.ConnectionError)
    @app.exception_handler(redis.exceptions.TimeoutError)
    async def _redis_down(_: Request, exc: Exception) -> JSONResponse:
        logger.warning("redis unavailable", extra={"error": str(exc)})
        return JSONResponse({"detail": "Redis is unavailable; try again shortly"}, 503)

    # SQLAlchemy's errors, and asyncpg's own as `Database.fetch_one`/`fetch_all` raise them.
    @app.exception_handler(sa_exc.DBAPIError)
    @app.exception_handler(asyncpg.PostgresError)
    @app.exception_handler(asyncpg.InterfaceError)
    @app.exception_handler(asyncpg.InternalClientError)
    @app.exception_handler(TimeoutError)
    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        if is_database_busy(exc):
            return busy_response(exc)
        if is_database_unavailable(exc):
            cause = getattr(exc, "orig", None) or exc
            logger.warning("database unavailable", extra={"error": str(cause)})
            return JSONResponse({"detail": "The database is unavailable; try again shortly"}, 503)
        if _is_refused_value(exc):
            # Input the schema let through but PostgreSQL refuses (an out-of-range number...).
            return JSONResponse({"detail": _refused_value_errors(request)}, 422)
        logger.exception("database error")
        return JSONResponse({"detail": "Internal server error"}, 500)

    @app.exception_handler(OSError)
    async def _network_error(_: Request, exc: OSError) -> JSONResponse:
        # asyncpg raises plain OSError subclasses when PostgreSQL is not listening.
        logger.warning("dependency unreachable", extra={"error": str(exc)})
        return JSONResponse({"detail": "A dependency is unavailable; try again shortly"}, 503)
