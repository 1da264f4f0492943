"""Swagger UI and ReDoc served with their assets from the service itself.

FastAPI's default pages load their JavaScript from a CDN: offline (CI, air-gapped
installs) the docs would stay blank. The assets come from the `fastapi-offline`
package and are served under the service prefix, so they pass through the gateway.
"""

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from servicekit.caching import PUBLIC_REVALIDATED

ASSETS = Path(fastapi_offline.__file__).parent / "static"


class RevalidatedStaticFiles(StaticFiles):
    """The assets are the same for everyone: any cache keeps them and revalidates (ETag)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = PUBLIC_REVALIDATED
        return response


def _public(page: HTMLResponse) -> HTMLResponse:
    page.headers["Cache-Control"] = PUBLIC_REVALIDATED
    return page


def install_docs(app: FastAPI, prefix: str) -> None:
    """`{prefix}/docs`, `{prefix}/docs/oauth2-redirect` and `{prefix}/redoc`."""
    assets = f"{prefix}/docs-assets"
    openapi_url = f"{prefix}/openapi.json"
    oauth2_redirect_url = f"{prefix}/docs/oauth2-redirect"
    app.mount(assets, RevalidatedStaticFiles(directory=ASSETS), name="docs-assets")

    @app.get(f"{prefix}/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _public(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{app.title} - Swagger UI",
                oauth2_redirect_url=oauth2_redirect_url,
                swagger_js_url=f"{assets}/swagger-ui-bundle.js",
                swagger_css_url=f"{assets}/swagger-ui.css",
                swagger_favicon_url=f"{assets}/favicon.png",
                # Swagger's Authorize dialog keeps the token across reloads of the page.
                swagger_ui_parameters={"persistAuthorization": True},
            )
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return _public(get_swagger_ui_oauth2_redirect_html())

    @app.get(f"{prefix}/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _public(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{assets}/redoc.standalone.js",
                redoc_favicon_url=f"{assets}/favicon.png",
                with_google_fonts=False,
            )
        )
