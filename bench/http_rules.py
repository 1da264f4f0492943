"""What HTTP's read and cache rules cost per answer in `RequestContextMiddleware` (issue 25).

`uv run python -m bench.http_rules`. In process, no server: a constant ASGI app answering a
list-sized JSON body (about 5 KB, a page of 20 items), called bare and through the middleware
(request id, security headers, `Cache-Control`, ETag, `If-None-Match`, access log off).
Rows: an answer that brings its own ETag (an item), one whose ETag is hashed from its bytes
(a list: SHA-1 of the body, the one cost that grows with the answer), and the 304 a client
gets when its ETag is current. On this 2-core machine, shared and loaded, the hashed answer
cost about 8-20 us more than one with its own ETag, nearly all of it the hash; a list read
takes about 1.3 ms end to end (bench.http_reads).
"""

import asyncio
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.middleware import RequestContextMiddleware

BODY = (
    b'{"items": ['
    + b",".join(
        [b'{"id": "0f8fad5b-d9cb-469f-a165-70867728950e", "title": "A desk lamp", "tags": []}'] * 60
    )
    + b'], "total": 60, "limit": 60, "offset": 0}'
)
ROUTE_ETAG = b'"0f8fad5bd9cb469fa16570867728950e-1"'


def constant_app(*, etag: bool) -> ASGIApp:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
    if etag:
        headers.append((b"etag", ROUTE_ETAG))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": BODY})

    return app


async def _receive() -> Message:
    return {"type": "http.request", "body": b""}


async def _discard(message: Message) -> None:
    return None


async def microseconds_per_answer(
    app: ASGIApp, *, if_none_match: bytes | None = None, count: int = 20_000
) -> float:
    headers = [(b"host", b"bench"), (b"authorization", b"Bearer t")]
    if if_none_match is not None:
        headers.append((b"if-none-match", if_none_match))
    scope = {"type": "http", "method": "GET", "path": "/api/v1/items/", "headers": headers}
    for _ in range(count // 10):
        await app(dict(scope), _receive, _discard)
    started = time.perf_counter()
    for _ in range(count):
        await app(dict(scope), _receive, _discard)
    return (time.perf_counter() - started) / count * 1e6


async def measure() -> None:
    logging.disable(logging.INFO)  # the access log is measured with the HTTP benchmarks
    print(f"body {len(BODY)} bytes; microseconds per answer, best of 3")
    rows = {
        "bare app, no middleware": (constant_app(etag=True), None),
        "middleware, the route's own ETag": (
            RequestContextMiddleware(constant_app(etag=True)),
            None,
        ),
        "middleware, ETag hashed from the body": (
            RequestContextMiddleware(constant_app(etag=False)),
            None,
        ),
        "middleware, If-None-Match current: 304": (
            RequestContextMiddleware(constant_app(etag=True)),
            ROUTE_ETAG,
        ),
    }
    for name, (app, if_none_match) in rows.items():
        best = min([await microseconds_per_answer(app, if_none_match=if_none_match) for _ in "abc"])
        print(f"  {name:42} {best:6.1f}")


def main() -> None:
    asyncio.run(measure())


if __name__ == "__main__":
    main()
