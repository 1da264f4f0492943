"""The users service's ASGI app: `uvicorn users.main:app`."""

from servicekit.app import create_app
from users.events import HANDLERS
from users.routes import router
from users.settings import settings

app = create_app(
    settings,
    routers=[router],
    title="Users service",
    description="Profiles keyed by the account id.",
    event_handlers=HANDLERS,
)
