"""The items service's ASGI app: `uvicorn items.main:app`."""

from items.events import HANDLERS
from items.routes import router
from items.settings import settings
from servicekit.app import create_app

app = create_app(
    settings,
    routers=[router],
    title="Items service",
    description="Items owned by users.",
    event_handlers=HANDLERS,
    publishes_events=True,
)
