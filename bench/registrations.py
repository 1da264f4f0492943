"""Register 500 accounts as fast as possible; time until every verification mail arrives.

`uv run python -m bench.registrations`. Runs a private native stack (gateway rate limit
lifted for the run), registers through the gateway with a pool of concurrent clients,
then polls the mail sink. Prints how long the registrations and the mails took, the
rate of events through outbox → relay → stream → consumer → mailer, and whether any
mail was lost or sent twice.
"""

import asyncio
import collections
import time
import uuid

import httpx

from devstack.stack import Stack, StackConfig

ACCOUNTS, CONCURRENCY = 500, 16
PASSWORD = "correct horse battery"


async def register_all(gateway: str, emails: list[str]) -> float:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for email in emails:
        queue.put_nowait(email)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            email = queue.get_nowait()
            response = await client.post(
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
            )
            if response.status_code != 201:
                raise SystemExit(f"registration failed: {response.status_code} {response.text}")

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return time.perf_counter() - started


def verification_mails(mailbox: str) -> collections.Counter[str]:
    response = httpx.get(f"{mailbox}/api/v1/messages", params={"limit": 5000}, timeout=30)
    response.raise_for_status()
    counts: collections.Counter[str] = collections.Counter()
    for message in response.json()["messages"]:
        if "Confirm" in message["Subject"]:
            for recipient in message["To"]:
                counts[recipient["Address"]] += 1
    return counts


def wait_for_mails(stack: Stack, emails: list[str]) -> collections.Counter[str]:
    deadline = time.perf_counter() + 300
    counts = verification_mails(stack.config.mailbox_url)
    while sum(1 for e in emails if counts[e]) < len(emails) and time.perf_counter() < deadline:
        time.sleep(0.5)
        counts = verification_mails(stack.config.mailbox_url)
    return counts


def report(
    label: str,
    registering: float,
    mailing: float,
    emails: list[str],
    counts: collections.Counter[str],
) -> None:
    lost = sum(1 for e in emails if counts[e] == 0)
    doubled = sum(1 for e in emails if counts[e] > 1)
    print(f"[{label}] {len(emails)} registrations through the gateway ({CONCURRENCY} clients): "
          f"{registering:.1f}s ({len(emails) / registering:.0f}/s)")  # fmt: skip
    if label == "live":
        print(f"[{label}] every verification mail in the sink {mailing:.1f}s after the first "
              f"registration ({len(emails) / mailing:.0f} events/s end to end)")  # fmt: skip
    else:
        print(f"[{label}] consumer restarted: backlog of {len(emails)} drained to the sink in "
              f"{mailing:.1f}s ({len(emails) / mailing:.0f} events/s: stream → consumer → "
              f"mailer → SMTP)")  # fmt: skip
    print(f"[{label}] lost: {lost}, sent twice: {doubled}")


def main() -> None:
    rate_limit_off = {"GATEWAY_AUTH_RATE_AVERAGE": "100000", "GATEWAY_AUTH_RATE_BURST": "100000"}
    stack = Stack(StackConfig.isolated(extra_env=rate_limit_off, prometheus=False))
    stack.start()
    try:
        run = uuid.uuid4().hex[:6]
        emails = [f"bench-{run}-{n}@example.com" for n in range(ACCOUNTS)]
        started = time.perf_counter()
        registering = asyncio.run(register_all(stack.config.gateway_url, emails))
        counts = wait_for_mails(stack, emails)
        all_mailed = time.perf_counter() - started
        report("live", registering, all_mailed, emails, counts)

        # Again with the notifications service down while the accounts are created: the
        # events pile up in the stream, and the drain shows the consumer's own pace.
        stack.processes["notifications"].stop()
        emails = [f"bench-{run}-backlog-{n}@example.com" for n in range(ACCOUNTS)]
        registering = asyncio.run(register_all(stack.config.gateway_url, emails))
        started = time.perf_counter()
        stack.restart_process("notifications")
        counts = wait_for_mails(stack, emails)
        report("backlog", registering, time.perf_counter() - started, emails, counts)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
