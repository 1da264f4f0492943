"""OAuth 2.0's error vocabulary beside the contract's `detail`, so that off-the-shelf OAuth
clients (Authlib, oauthlib, browser SDKs) understand our failures; the statuses stay the
contract's.

- Bearer failures (RFC 6750 §3): a 401 to a request that presented a bearer token says
  `WWW-Authenticate: Bearer error="invalid_token"`, a 403 to one says `insufficient_scope`
  (our only scope-like grant is the admin role); a request without a token gets the bare
  `Bearer` challenge, as §3.1 asks.
- Token endpoint errors (RFC 6749 §5.2): the routes built with `TokenEndpointRoute` answer
  every failure with an `error` code and `error_description` beside `detail`, and every answer,
  tokens or error, with `Cache-Control: no-store` (§5.1).
"""

import re
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from servicekit.caching import NO_STORE
from servicekit.errors import Forbidden, ServiceError, Unauthorized, validation_errors

#: Characters RFC 6750 §3 allows inside `error_description`; anything else becomes a space.
_UNQUOTABLE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")

#: RFC 6749 §5.2 codes for the token endpoint's statuses. `temporarily_unavailable` (the OAuth
#: error registry's, RFC 6749 §4.1.2.1) marks the throttling 429, whose `Retry-After` says when.
TOKEN_ERROR_BY_STATUS = {401: "invalid_grant", 429: "temporarily_unavailable"}
INVALID_REQUEST = "invalid_request"
UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
TOKEN_HEADERS = {"Cache-Control": NO_STORE, "Pragma": "no-cache"}


class OAuthErrorBody(BaseModel):
    """A token endpoint's failure: the contract's `detail` and RFC 6749 §5.2's fields."""

    detail: Any
    error: str
    error_description: str


def bearer_challenge(error: str | None = None, description: str | None = None) -> str:
    """A `WWW-Authenticate` value; `error` only when a token was presented (RFC 6750 §3.1)."""
    if error is None:
        return "Bearer"
    challenge = f'Bearer error="{error}"'
    if description:
        challenge += f', error_description="{_UNQUOTABLE.sub(" ", description)}"'
    return challenge


def _presents_bearer_token(request: Request) -> bool:
    return request.headers.get("authorization", "")[:7].lower() == "bearer "


async def bearer_failure(request: Request, exc: ServiceError) -> Response:
    """A 401 or 403 as the `ServiceError` handler answers it, with RFC 6750's error code."""
    headers = dict(exc.headers or {})
    if _presents_bearer_token(request):
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = bearer_challenge("invalid_token", exc.detail)
        else:
            headers["WWW-Authenticate"] = bearer_challenge("insufficient_scope", exc.detail)
    return JSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)


def install_bearer_challenges(app: FastAPI) -> None:
    """Answer `Unauthorized` and `Forbidden` with RFC 6750's challenge (ahead of `ServiceError`)."""
    app.exception_handler(Unauthorized)(bearer_failure)
    app.exception_handler(Forbidden)(bearer_failure)


def _token_error(
    status: int, detail: Any, error: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    description = detail if isinstance(detail, str) else "The request is malformed"
    body = {"detail": detail, "error": error, "error_description": description}
    return JSONResponse(body, status, headers={**(headers or {}), **TOKEN_HEADERS})


def _validation_error_code(exc: RequestValidationError) -> str:
    for error in exc.errors():
        if tuple(error.get("loc", ()))[-1:] == ("grant_type",):
            return UNSUPPORTED_GRANT_TYPE
    return INVALID_REQUEST


class TokenEndpointRoute(APIRoute):
    """A route that hands out tokens: `no-store` on every answer, OAuth `error` on failures."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def token_endpoint(request: Request) -> Response:
            try:
                response = await handler(request)
            except RequestValidationError as exc:
                return _token_error(422, validation_errors(exc), _validation_error_code(exc))
            except (ServiceError, StarletteHTTPException) as exc:
                if exc.status_code >= 500:
                    raise
                code = TOKEN_ERROR_BY_STATUS.get(exc.status_code, INVALID_REQUEST)
                return _token_error(exc.status_code, exc.detail, code, exc.headers)
            response.headers.update(TOKEN_HEADERS)
            return response

        return token_endpoint
