"""How soon the users service applies `user.registered` after the auth service commits it.

`uv run python -m bench.event_latency [registrations]`. Runs a private native stack twice:
once with the outbox relay only polling every 0.2 s (the behaviour before the wake-up,
`OUTBOX_WAKE_ON_COMMIT=false`), once with the relay woken by the commit. Accounts are
registered one after another straight at the auth service, so each event travels alone: first
back to back (the next registration's Argon2 hash competes with the event for the two cores),
then paced, 50 ms apart, so that each event crosses an otherwise idle machine.

The latency of one event is read from the two databases, on the same clock: from the
event's `occurred_at` (stamped in the registering transaction, just before its commit) to
the profile's `updated_at` (stamped by the users service's handler, one round trip before
its commit): auth commit -> relay -> Redis stream -> users consumer -> handler.
"""

import asyncio
import statistics
import sys
import time
import uuid

import asyncpg
import httpx

from devstack.stack import Stack, StackConfig

REGISTRATIONS = 300
#: Between two paced registrations: longer than an event takes to arrive once woken.
IDLE_GAP = 0.05
PASSWORD = "correct horse battery"
POLLING_ONLY = {"OUTBOX_WAKE_ON_COMMIT": "false", "OUTBOX_POLL_INTERVAL": "0.2"}


async def register(stack: Stack, emails: list[str], *, gap: float) -> None:
    async with httpx.AsyncClient(base_url=stack.config.service_url("auth"), timeout=30) as client:
        for email in emails:
            response = await client.post(
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
            )
            if response.status_code != 201:
                raise SystemExit(f"registration failed: {response.status_code} {response.text}")
            await asyncio.sleep(gap)


async def applied_at(stack: Stack, emails: list[str], *, wait: float = 60) -> dict[str, float]:
    """When the users service wrote each email into its profile (epoch seconds)."""
    users = await asyncpg.connect(stack.database_url("users", scheme="postgresql"))
    try:
        deadline = time.monotonic() + wait
        while True:
            rows = await users.fetch(
                "SELECT email, updated_at FROM profile WHERE email = ANY($1::text[])", emails
            )
            if len(rows) == len(emails) or time.monotonic() > deadline:
                return {row["email"]: row["updated_at"].timestamp() for row in rows}
            await asyncio.sleep(0.2)
    finally:
        await users.close()


async def committed_at(stack: Stack, emails: list[str]) -> dict[str, float]:
    """When each registration's `user.registered` was staged (epoch seconds)."""
    auth = await asyncpg.connect(stack.database_url("auth", scheme="postgresql"))
    try:
        rows = await auth.fetch(
            "SELECT data->>'email' AS email, occurred_at FROM outbox_event"
            " WHERE type = 'user.registered' AND data->>'email' = ANY($1::text[])",
            emails,
        )
        return {row["email"]: row["occurred_at"].timestamp() for row in rows}
    finally:
        await auth.close()


Result = tuple[list[float], int]


async def latencies_ms(stack: Stack, count: int, *, gap: float) -> Result:
    """Each event's latency in ms, and how many never reached the users service."""
    run = uuid.uuid4().hex[:6]
    emails = [f"latency-{run}-{n}@example.com" for n in range(count)]
    await register(stack, emails, gap=gap)
    applied = await applied_at(stack, emails)
    committed = await committed_at(stack, emails)
    found = [email for email in emails if email in applied and email in committed]
    return [(applied[e] - committed[e]) * 1000 for e in found], count - len(found)


def measure(extra_env: dict[str, str], count: int) -> tuple[Result, Result]:
    """Back to back, then paced, on one stack."""
    stack = Stack(StackConfig.isolated(extra_env=extra_env, prometheus=False))
    stack.start()
    try:
        busy = asyncio.run(latencies_ms(stack, count, gap=0))
        idle = asyncio.run(latencies_ms(stack, count, gap=IDLE_GAP))
        return busy, idle
    finally:
        stack.stop()


def summary(label: str, latencies: list[float], missing: int) -> str:
    if len(latencies) < 2:
        return f"{label}: too few events arrived ({len(latencies)}), {missing} missing"
    centiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return (
        f"{label}: p50 {centiles[49]:.1f} ms, p99 {centiles[98]:.1f} ms, "
        f"max {max(latencies):.1f} ms over {len(latencies)} events; missing: {missing}"
    )


def main(count: int = REGISTRATIONS) -> None:
    print(f"user.registered, auth commit -> users profile, {count} registrations one at a time")
    for label, extra_env in (
        ("relay polling every 0.2 s (before)", POLLING_ONLY),
        ("relay woken at commit (now)", {}),
    ):
        busy, idle = measure(extra_env, count)
        print(summary(f"  {label}, back to back", *busy))
        print(summary(f"  {label}, {IDLE_GAP * 1000:.0f} ms apart ", *idle))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else REGISTRATIONS)
