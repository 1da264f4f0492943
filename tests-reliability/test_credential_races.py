"""Logins racing every credential change: nothing they obtain outlives the change.

Each round starts a change (password change or reset, deletion, deactivation, removal of
the admin role) and, a few milliseconds apart while it runs, several logins with the
password valid before it. Once the change has answered, every token those logins got is
tried at the four services (and at `/refresh`): none may work, and no request of the
round may have answered 5xx. For a role removal a fresh login is allowed, so the test
asks the four services' administrator routes instead: none may accept a racing token.

The window these rounds aim at is the change's slow part (Argon2), between the moment the
old state is read and the moment the new one commits; the offsets spread the logins across
it, and the rounds repeat it enough to hit it on a loaded machine (the fix's commit message
gives the count of working tokens before the fix).
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest
from reliability_support import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    PASSWORD,
    PROTECTED_READS,
    Mailbox,
    Measurements,
    eventually,
    unique_email,
)

from devstack.stack import Stack

ROUNDS = 6
LOGINS = 8
SPACING = 0.006  # seconds between the racing logins
NEW_PASSWORD = "reliability-password-2"
RESET_SUBJECT = "Reset your password"

#: One route per service that only an administrator may use.
ADMIN_READS = {
    "auth": "/api/v1/auth/accounts",
    "users": "/api/v1/users/",
    "items": f"/api/v1/items/?owner_id={uuid.uuid4()}",
    "notifications": "/api/v1/notifications/deliveries",
}

Change = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


@dataclass
class Victim:
    email: str
    user_id: str
    access_token: str


@dataclass
class RaceTally:
    rounds: int = 0
    tokens: int = 0
    working: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _victim(client: httpx.AsyncClient, prefix: str) -> Victim:
    email = unique_email(prefix)
    registered = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    login = await client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return Victim(email, registered.json()["id"], login.json()["access_token"])


async def _race(
    client: httpx.AsyncClient, victim: Victim, change: Change, tally: RaceTally, *, reads: dict
) -> None:
    """Start `change`, race LOGINS logins against it, then try every token they got."""

    async def login(delay: float) -> httpx.Response:
        await asyncio.sleep(delay)
        return await client.post(
            "/api/v1/auth/token", data={"username": victim.email, "password": PASSWORD}
        )

    changing = asyncio.create_task(change(client))
    logins = [asyncio.create_task(login(n * SPACING)) for n in range(LOGINS)]
    changed = await changing
    answers = await asyncio.gather(*logins)
    assert changed.status_code < 300, changed.text
    tally.rounds += 1
    tally.server_errors += [a.text for a in answers if a.status_code >= 500]
    for answer in answers:
        if answer.status_code != 200:
            continue
        tally.tokens += 1
        tokens = answer.json()
        worked = []
        for name, path in reads.items():
            used = await client.get(path, headers=_bearer(tokens["access_token"]))
            if used.status_code >= 500:
                tally.server_errors.append(f"{name}: {used.text}")
            if used.status_code == 200:
                worked.append(name)
        if reads is PROTECTED_READS:
            refreshed = await client.post(
                "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
            )
            if refreshed.status_code == 200:
                worked.append("refresh")
        if worked:
            tally.working.append("+".join(worked))


async def _admin_token(client: httpx.AsyncClient) -> str:
    answer = await client.post(
        "/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def _reset_token(mailbox: Mailbox, email: str) -> str:
    def find() -> str | None:
        for message in mailbox.messages():
            if RESET_SUBJECT in message["Subject"] and message["To"][0]["Address"] == email:
                text = mailbox.client.get(f"/api/v1/message/{message['ID']}").json()["Text"]
                return str(text.split("token=", 1)[1].split()[0])
        return None

    return eventually(find, timeout=20, what=f"a reset mail to {email}")


async def _changes(
    kind: str, client: httpx.AsyncClient, mailbox: Mailbox, victim: Victim
) -> tuple[Change, dict[str, str]]:
    """The change of `kind` against `victim`, and the routes a racing token must not pass."""
    if kind == "password-change":
        body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        return lambda c: c.post(
            "/api/v1/auth/password/change", json=body, headers=_bearer(victim.access_token)
        ), PROTECTED_READS
    if kind == "password-reset":
        forgot = await client.post("/api/v1/auth/password/forgot", json={"email": victim.email})
        assert forgot.status_code == 202
        token = await asyncio.to_thread(_reset_token, mailbox, victim.email)
        body = {"token": token, "new_password": NEW_PASSWORD}
        return lambda c: c.post("/api/v1/auth/password/reset", json=body), PROTECTED_READS
    if kind == "deletion":
        return lambda c: c.request(
            "DELETE",
            "/api/v1/auth/me",
            json={"password": PASSWORD},
            headers=_bearer(victim.access_token),
        ), PROTECTED_READS
    admin = _bearer(await _admin_token(client))
    path = f"/api/v1/auth/accounts/{victim.user_id}"
    if kind == "deactivation":
        return lambda c: c.patch(path, json={"is_active": False}, headers=admin), PROTECTED_READS
    assert kind == "role-removal"
    promoted = await client.patch(path, json={"roles": ["user", "admin"]}, headers=admin)
    assert promoted.status_code == 200, promoted.text
    return lambda c: c.patch(path, json={"roles": ["user"]}, headers=admin), ADMIN_READS


async def _run(kind: str, gateway_url: str, mailbox: Mailbox) -> RaceTally:
    tally = RaceTally()
    limits = httpx.Limits(max_connections=LOGINS + 4)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=60, limits=limits) as client:
        for _ in range(ROUNDS):
            victim = await _victim(client, f"race-{kind}")
            change, reads = await _changes(kind, client, mailbox, victim)
            await _race(client, victim, change, tally, reads=reads)
    return tally


@pytest.mark.parametrize(
    "kind", ["password-change", "password-reset", "deletion", "deactivation", "role-removal"]
)
def test_no_token_from_a_login_racing_a_credential_change_works_anywhere(
    kind: str, stack: Stack, mailbox: Mailbox, measurements: Measurements
) -> None:
    tally = asyncio.run(_run(kind, stack.config.gateway_url, mailbox))
    measurements.record("credential_races", f"{kind}_tokens_obtained", tally.tokens)
    measurements.record("credential_races", f"{kind}_tokens_working", len(tally.working))
    print(f"{kind}: {tally.rounds} rounds, {tally.tokens} racing logins got tokens, "
          f"{len(tally.working)} of them still work at: {tally.working}")  # fmt: skip
    assert tally.server_errors == []
    assert tally.working == []
