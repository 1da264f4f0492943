"""The pages Traefik sends for the answers it makes itself (gateway/dynamic.yml, `pages`).

Traefik's rate limiter, its 502 and 504 and unmatched paths would answer in plain text.
Its `errors` middleware instead fetches `GET /gateway-error/<status>` from any live service
and sends that body and those headers with the original status, so a client gets the
contract's JSON `{"detail": ...}` from the gateway as from a service. Every service serves
the same pages (outside its prefix, undocumented), so any of them can render them.
"""

from http import HTTPStatus

from fastapi import APIRouter
from fastapi.responses import JSONResponse

router = APIRouter(include_in_schema=False)

#: Seconds a client should wait: the gateway's rate limit refills within a second, and a
#: service comes back in a few.
RETRY_AFTER = {HTTPStatus.TOO_MANY_REQUESTS: 1, HTTPStatus.SERVICE_UNAVAILABLE: 5}

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@router.api_route("/gateway-error/{status}", methods=_METHODS)
async def gateway_error(status: int) -> JSONResponse:
    """The page for `status`; 200 is the gateway's health check of this page service."""
    try:
        known = HTTPStatus(status)
    except ValueError:
        known = HTTPStatus.NOT_FOUND
    if not (known == HTTPStatus.OK or known >= HTTPStatus.BAD_REQUEST):
        known = HTTPStatus.NOT_FOUND
    headers = {"Retry-After": str(RETRY_AFTER[known])} if known in RETRY_AFTER else None
    return JSONResponse({"detail": known.phrase}, status_code=known, headers=headers)
