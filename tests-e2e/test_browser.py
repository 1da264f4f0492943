"""A real browser: its own CORS enforcement against the gateway, and Swagger UI's Authorize.

Headless Debian Chromium driven by Playwright; a failing test leaves a screenshot in
test-artifacts/.
"""

import fcntl
import http.server
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from e2e import User
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

#: The gateway allows this origin by default (and compose's configuration keeps it).
ALLOWED_ORIGIN_PORT = 3000

#: A page as a single-page app would be: it calls the API on another origin, with the
#: user's token, and reads the headers the gateway exposes.
SPA_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>A single-page app</title></head>
<body>
<script>
async function createItem(api, token, requestId) {
  try {
    const response = await fetch(api + "/api/v1/items/", {
      method: "POST",
      credentials: "include",
      headers: {
        "Authorization": "Bearer " + token,
        "Content-Type": "application/json",
        "X-Request-ID": requestId,
      },
      body: JSON.stringify({title: "Made in a browser"}),
    });
    return {
      status: response.status,
      body: await response.json(),
      etag: response.headers.get("ETag"),
      location: response.headers.get("Location"),
      requestId: response.headers.get("X-Request-ID"),
      frameOptions: response.headers.get("X-Frame-Options"),
    };
  } catch (error) {
    return {error: error.name + ": " + error.message};
  }
}
</script>
</body></html>
"""


class PageServer(http.server.ThreadingHTTPServer):
    """Serves one HTML page at every path, from a thread, while used as a context manager."""

    def __init__(self, html: bytes, host: str, port: int) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(html)))
                self.end_headers()
                self.wfile.write(html)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__((host, port), Handler)  # binds now: an OSError if the port is taken

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def __enter__(self) -> "PageServer":
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        self.server_close()


@contextmanager
def exclusive(name: str) -> Iterator[None]:
    """Held by one test at a time across xdist workers (and concurrent runs on this machine)."""
    with (Path(tempfile.gettempdir()) / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def allowed_origin() -> Iterator[str]:
    """The app page, served from http://localhost:3000, an origin the gateway allows."""
    with exclusive(f"e2e-port-{ALLOWED_ORIGIN_PORT}"):
        try:
            server = PageServer(SPA_PAGE, "127.0.0.1", ALLOWED_ORIGIN_PORT)
        except OSError as exc:
            pytest.fail(
                f"port {ALLOWED_ORIGIN_PORT} is taken ({exc}). The browser tests serve their page"
                f" from http://localhost:{ALLOWED_ORIGIN_PORT}, an origin the gateway allows:"
                " stop whatever listens there."
            )
        with server:
            yield f"http://localhost:{ALLOWED_ORIGIN_PORT}"


@pytest.fixture
def refused_origin() -> Iterator[str]:
    """The same page from http://127.0.0.1:<free port>, an origin the gateway does not allow."""
    with PageServer(SPA_PAGE, "127.0.0.1", 0) as server:
        yield f"http://127.0.0.1:{server.port}"


@pytest.fixture(scope="session")
def api_origin(gateway_url: str) -> str:
    """The gateway, named `localhost`: another origin than the page's, as in production."""
    parts = urlsplit(gateway_url)
    if parts.hostname in ("127.0.0.1", "::1"):
        parts = parts._replace(netloc=f"localhost:{parts.port}")
    return urlunsplit(parts)


def test_a_page_on_an_allowed_origin_calls_the_api_and_reads_the_exposed_headers(
    page: Any, allowed_origin: str, api_origin: str, api: httpx.Client, new_user: User
) -> None:
    page.goto(allowed_origin)
    result = page.evaluate(
        "([api, token]) => createItem(api, token, 'from-the-browser-1')",
        [api_origin, new_user.access_token],
    )

    assert result.get("error") is None, result
    assert result["status"] == 201 and result["body"]["title"] == "Made in a browser"
    # Readable from script only because the gateway exposes them...
    assert result["etag"] and result["location"].endswith(result["body"]["id"])
    assert result["requestId"] == "from-the-browser-1"
    # ...unlike this one, on the very same response.
    assert result["frameOptions"] is None
    assert api.get("/api/v1/items/", headers=new_user.auth).json()["total"] == 1


def test_a_page_on_a_refused_origin_is_blocked_by_the_browser(
    page: Any, refused_origin: str, api_origin: str, api: httpx.Client, new_user: User
) -> None:
    page.goto(refused_origin)
    result = page.evaluate(
        "([api, token]) => createItem(api, token, 'from-the-browser-2')",
        [api_origin, new_user.access_token],
    )

    assert result == {"error": "TypeError: Failed to fetch"}
    # The preflight was refused, so the browser never sent the POST itself.
    assert api.get("/api/v1/items/", headers=new_user.auth).json()["total"] == 0


def test_swagger_ui_logs_in_with_authorize_and_creates_an_item(
    page: Any, gateway_url: str, api: httpx.Client, new_user: User
) -> None:
    page.goto(f"{gateway_url}/api/v1/items/docs")

    # The Authorize dialog: OAuth2's password flow against /api/v1/auth/token.
    page.get_by_role("button", name="Authorize").first.click()
    page.locator("#oauth_username").fill(new_user.email)
    page.locator("#oauth_password").fill(new_user.password)
    page.get_by_role("button", name="Apply given OAuth2 credentials").click()
    dialog = page.locator(".modal-ux")
    dialog.get_by_text("Authorized", exact=True).wait_for()  # once the token came back
    dialog.locator("button", has_text="Close").click()

    # "Try it out" on POST /api/v1/items/.
    operation = page.locator(".opblock-post", has=page.locator("[data-path='/api/v1/items/']"))
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.locator("textarea.body-param__text").fill('{"title": "Made in Swagger UI"}')
    operation.get_by_role("button", name="Execute").click()

    status = operation.locator(".live-responses-table tr.response .response-col_status")
    expect(status).to_have_text("201")
    items = api.get("/api/v1/items/", headers=new_user.auth).json()["items"]
    assert [item["title"] for item in items] == ["Made in Swagger UI"]
