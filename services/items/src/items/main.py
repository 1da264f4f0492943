"""The items service's ASGI app: `uvicorn items.main:app`."""

from servicekit.app import create_app

from items.routes import router
from items.settings import settings

app = create_app(
    settings,
    routers=[router],
    title="Items service",
    description="Items owned by users.",
)
