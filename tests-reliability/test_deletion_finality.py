"""An account deleted while its registration is still being handled stays deleted.

The order a crash can deliver: users and notifications have read `user.registered` and
are stuck in its handler (the test holds a lock on their `processed_event` tables), the
account is deleted, both consumers are killed, the lock released, and both restarted
(under new names, with the production EVENT_CLAIM_IDLE_MS of 30 s). The restarted
consumers see `user.deleted` and the registration their predecessors held, in whatever
order; afterwards no service holds anything of the account and no mail went to it.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import redis
from reliability_support import (
    PASSWORD,
    Mailbox,
    Measurements,
    bearer,
    eventually,
    kill_process_group,
    query,
    start_process,
    unique_email,
)

from devstack.stack import Stack

HELD = ("users", "notifications")
STREAM = "events"


@asynccontextmanager
async def handlers_held(stack: Stack) -> AsyncIterator[None]:
    """No event handler of `HELD` can commit (nor get past its first insert) meanwhile."""
    assert stack.postgres is not None
    connections = [await asyncpg.connect(stack.postgres.dsn(name)) for name in HELD]
    try:
        for connection in connections:
            await connection.execute("BEGIN; LOCK TABLE processed_event IN EXCLUSIVE MODE")
        yield
    finally:
        for connection in connections:
            await connection.close()  # the lock goes with its transaction


def pending(client: redis.Redis, group: str) -> int:
    return int(client.xpending(STREAM, group)["pending"])  # type: ignore[index]


def test_an_account_deleted_mid_registration_leaves_nothing_behind(
    stack: Stack, mailbox: Mailbox, measurements: Measurements
) -> None:
    email = unique_email("erased")
    events = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    held_before = {name: pending(events, name) for name in HELD}

    async def register_and_delete_while_held() -> str:
        async with (
            httpx.AsyncClient(base_url=stack.config.gateway_url, timeout=30) as api,
            handlers_held(stack),
        ):
            account = {"email": email, "password": PASSWORD}
            registered = await api.post("/api/v1/auth/register", json=account)
            assert registered.status_code == 201, registered.text
            await asyncio.to_thread(
                eventually,
                lambda: all(pending(events, n) > held_before[n] for n in HELD),
                what="the registration read and held by users and notifications",
            )
            login = await api.post(
                "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
            )
            token = login.json()["access_token"]
            deleted = await api.request(
                "DELETE", "/api/v1/auth/me", json={"password": PASSWORD}, headers=bearer(token)
            )
            assert deleted.status_code == 204, deleted.text
            for name in HELD:
                await asyncio.to_thread(kill_process_group, stack, name)
        return str(registered.json()["id"])

    user_id = asyncio.run(register_and_delete_while_held())
    originals = {name: stack.processes[name].env.get("EVENT_CLAIM_IDLE_MS") for name in HELD}
    restarted_at = time.monotonic()
    try:
        for name in HELD:
            stack.processes[name].env["EVENT_CLAIM_IDLE_MS"] = "30000"
            health = f"{stack.config.service_url(name)}/api/v1/{name}/health"
            start_process(stack, name, health)
        eventually(
            lambda: all(pending(events, name) == 0 for name in HELD),
            timeout=25,  # well within the 30 s claim: the dead consumers' messages come first
            what="the dead consumers' messages handled by their successors",
        )
    finally:
        for name, value in originals.items():
            if value is None:
                stack.processes[name].env.pop("EVENT_CLAIM_IDLE_MS", None)
            else:
                stack.processes[name].env["EVENT_CLAIM_IDLE_MS"] = value
        events.close()
    measurements.record(
        "deletion_finality",
        "held_messages_handled_seconds",
        round(time.monotonic() - restarted_at, 1),
    )
    time.sleep(1.5)  # the mailer polls every 0.2 s here: a queued mail would be sent by now
    left = {
        "profile": query(stack, "users", "SELECT id FROM profile WHERE id = $1", user_id),
        "item": query(stack, "items", "SELECT id FROM item WHERE owner_id = $1", user_id),
        "notification": query(
            stack, "notifications", "SELECT id FROM notification WHERE user_id = $1", user_id
        ),
        "delivery": query(
            stack, "notifications", "SELECT id FROM delivery WHERE user_id = $1", user_id
        ),
        "mail": [m for m in mailbox.messages() if m["To"][0]["Address"] == email],
    }
    counts = {what: len(rows) for what, rows in left.items()}
    measurements.record("deletion_finality", "left_behind", counts)
    assert counts == dict.fromkeys(left, 0)
