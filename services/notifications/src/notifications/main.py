"""The notifications service's ASGI app: `uvicorn notifications.main:app`."""

from servicekit.app import create_app

from notifications.routes import router
from notifications.settings import settings

app = create_app(
    settings,
    routers=[router],
    title="Notifications service",
    description="In-app notifications, WebSocket push and outgoing mail.",
)
