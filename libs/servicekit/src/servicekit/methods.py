"""`Allow`: every method a path answers, on each 405 and on `OPTIONS` (RFC 9110 §9.3.7, §15.5.6).

Starlette's 405 names the methods of the first route whose path matched, so a path served by
several routes (`GET /` and `POST /`) listed only one. The methods are gathered here from every
route, only when a 405 happens: nothing runs for the requests that succeed. An `OPTIONS`
without CORS headers (a browser's preflight is answered by the gateway) reaches no route of
ours and arrives here as a 405; it is answered 204 with the same `Allow`.
"""

from fastapi import FastAPI, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount, compile_path

#: Answered for every path that exists: HEAD wherever GET (RequestContextMiddleware), OPTIONS here.
_ALWAYS = ("OPTIONS",)
_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route of `app` answers at `path`, in a stable order."""
    methods: set[str] = set(_ALWAYS)
    for route in iter_route_contexts(app.routes):
        if route.path is None:
            continue
        if isinstance(route.original_route, Mount):
            if path.startswith(route.path.rstrip("/") + "/"):
                methods.update(("GET", "HEAD"))  # our only mount: the docs' static assets
        elif compile_path(route.path)[0].match(path):
            methods.update(route.methods or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods, key=lambda method: (_ORDER + (method,)).index(method))


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    """The 405 with the whole `Allow`, or an `OPTIONS` answered with it."""
    allow = ", ".join(allowed_methods(request.app, request.scope["path"]))
    if request.method == "OPTIONS":
        return Response(status_code=status.HTTP_204_NO_CONTENT, headers={"Allow": allow})
    detail = exc.detail if isinstance(exc, StarletteHTTPException) else "Method Not Allowed"
    return JSONResponse({"detail": detail}, 405, headers={"Allow": allow})


def install_method_answers(app: FastAPI) -> None:
    """Answer every 405 (and `OPTIONS`) through `method_not_allowed`."""
    app.add_exception_handler(status.HTTP_405_METHOD_NOT_ALLOWED, method_not_allowed)
