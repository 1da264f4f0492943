"""The service app: docs, health, and what its lifespan starts."""

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from devstack.mailsink import MailSink
from notifications import main, push
from notifications.settings import Settings, settings

PREFIX = "/api/v1/notifications"


async def test_openapi_lists_the_routes_of_the_contract(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{PREFIX}/openapi.json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {f"{PREFIX}/", f"{PREFIX}/read-all", f"{PREFIX}/{{notification_id}}/read"} <= set(paths)
    assert f"{PREFIX}/deliveries" in paths


async def test_ready_answers_when_database_and_redis_do(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{PREFIX}/ready")

    assert response.status_code == 200


async def test_lifespan_runs_the_mailer_when_asked(
    app: FastAPI,
    mail_sink: MailSink,
    add_delivery: Any,
    load_delivery: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configured = settings.model_copy(
        update={"RUN_MAILER": True, "SMTP_PORT": mail_sink.smtp_port, "MAIL_POLL_INTERVAL": 0.05}
    )
    monkeypatch.setattr(main, "settings", configured)
    replica = FastAPI()  # a second replica sharing the test app's database and Redis
    replica.state.database = app.state.database
    replica.state.redis = app.state.redis
    publisher = push._publisher
    try:
        async with main.lifespan(replica):
            delivery = await add_delivery()
            for _ in range(100):
                if (await load_delivery(delivery.id)).status == "sent":
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the lifespan's mailer sent nothing within 5 s")
    finally:
        push.install(publisher)  # the test app's own, which the replica's lifespan removed


def test_settings_refuse_a_lease_shorter_than_a_send() -> None:
    with pytest.raises(ValidationError, match="MAIL_LEASE_SECONDS"):
        Settings(SMTP_TIMEOUT=10, MAIL_LEASE_SECONDS=30)


def test_settings_trim_the_public_urls_trailing_slash() -> None:
    assert Settings(PUBLIC_URL="https://example.com/").PUBLIC_URL == "https://example.com"
