"""`POST /password/forgot` answers before it does any work that depends on the email.

The test makes that work block (it holds a lock on auth's one-time tokens, where a known
email's reset token is written): a request for a known email must still be answered at
once, like one for an unknown email, and its mail must follow once the lock is released.
Answering only after the work, the known email's request would hang until then, which is
the difference in time an attacker measures.
"""

import asyncio

import asyncpg
import httpx
from reliability_support import Api, Mailbox, eventually, unique_email

from devstack.stack import Stack


def test_forgot_answers_a_known_email_without_waiting_for_its_work(
    stack: Stack, api: Api, mailbox: Mailbox
) -> None:
    known = api.new_user("forgot-known").email
    assert stack.postgres is not None

    async def ask_while_held() -> dict[str, int | str]:
        connection = await asyncpg.connect(stack.postgres.dsn("auth"))  # type: ignore[union-attr]
        try:
            await connection.execute("BEGIN; LOCK TABLE one_time_token IN EXCLUSIVE MODE")
            async with httpx.AsyncClient(base_url=stack.config.gateway_url, timeout=3) as client:
                answers: dict[str, int | str] = {}
                for name, email in (("known", known), ("unknown", unique_email("nobody"))):
                    try:
                        response = await client.post(
                            "/api/v1/auth/password/forgot", json={"email": email}
                        )
                        answers[name] = response.status_code
                    except httpx.TimeoutException:
                        answers[name] = "no answer within 3 s"
            return answers
        finally:
            await connection.close()

    assert asyncio.run(ask_while_held()) == {"known": 202, "unknown": 202}
    eventually(
        lambda: [
            m
            for m in mailbox.messages()
            if m["To"][0]["Address"] == known and "Reset" in m["Subject"]
        ],
        what="the reset mail, once the work could proceed",
    )
