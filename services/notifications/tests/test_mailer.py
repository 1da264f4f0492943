"""The mailer against a real SMTP server (the mail sink), read back through its HTTP API."""

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from devstack.mailsink import MailSink
from devstack.ports import free_port
from notifications.mailer import Mailer, render
from notifications.models import Delivery, utcnow
from notifications.settings import settings

Handle = Callable[[str, dict[str, Any]], Awaitable[None]]
AddDelivery = Callable[..., Awaitable[Delivery]]
LoadDelivery = Callable[[uuid.UUID], Awaitable[Delivery]]
MakeMailer = Callable[..., Mailer]
DELIVERIES = "/api/v1/notifications/deliveries"


async def messages(mailbox: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await mailbox.get("/api/v1/messages")
    assert response.status_code == 200
    return list(response.json()["messages"])


async def only_message(mailbox: httpx.AsyncClient) -> dict[str, Any]:
    """The one message in the sink, in full (text, HTML, headers)."""
    [summary] = await messages(mailbox)
    response = await mailbox.get(f"/api/v1/message/{summary['ID']}")
    assert response.status_code == 200
    return dict(response.json())


async def test_registration_mail_carries_the_verification_link_with_its_token(
    handle: Handle,
    mailer: Mailer,
    mailbox: httpx.AsyncClient,
    session: AsyncSession,
    alice_id: uuid.UUID,
) -> None:
    await handle(
        "user.registered",
        {
            "user_id": str(alice_id),
            "email": "alice@example.com",
            "full_name": "Alice <Admin>",
            "verification_token": "tok_A-1",
        },
    )

    assert await mailer.run_once() == 1

    message = await only_message(mailbox)
    link = "http://gateway.test:8000/api/v1/auth/verify-email?token=tok_A-1"
    assert message["Subject"] == "Confirm your email address"
    assert [to["Address"] for to in message["To"]] == ["alice@example.com"]
    assert link in message["Text"]
    assert "tok_A-1" in message["Text"]
    assert f'href="{link}"' in message["HTML"]
    # The name typed at registration reaches no one: the address may be a stranger's.
    assert "Hello alice@example.com," in message["Text"]
    assert "Admin" not in message["Text"]
    assert "Admin" not in message["HTML"]


async def test_reset_mail_carries_the_reset_link_and_the_raw_token(
    handle: Handle, mailer: Mailer, mailbox: httpx.AsyncClient, alice_id: uuid.UUID
) -> None:
    await handle(
        "auth.password_reset_requested",
        {"user_id": str(alice_id), "email": "alice@example.com", "reset_token": "reset-XYZ"},
    )

    await mailer.run_once()

    message = await only_message(mailbox)
    assert message["Subject"] == "Reset your password"
    assert "http://gateway.test:8000/reset-password?token=reset-XYZ" in message["Text"]
    assert "POST /api/v1/auth/password/reset" in message["Text"]
    assert "\nreset-XYZ\n" in message["Text"]  # the raw token on a line of its own
    assert 'href="http://gateway.test:8000/reset-password?token=reset-XYZ"' in message["HTML"]


async def test_password_changed_mail_is_sent(
    handle: Handle, mailer: Mailer, mailbox: httpx.AsyncClient, alice_id: uuid.UUID
) -> None:
    await handle("auth.password_changed", {"user_id": str(alice_id), "email": "alice@example.com"})

    await mailer.run_once()

    message = await only_message(mailbox)
    assert message["Subject"] == "Your password was changed"
    assert "http://gateway.test:8000/api/v1/auth/password/forgot" in message["Text"]


async def test_sent_delivery_is_recorded_and_its_secrets_erased(
    mailer: Mailer,
    mailbox: httpx.AsyncClient,
    add_delivery: AddDelivery,
    load_delivery: LoadDelivery,
) -> None:
    delivery = await add_delivery()

    await mailer.run_once()

    sent = await load_delivery(delivery.id)
    assert (sent.status, sent.attempts, sent.last_error) == ("sent", 1, None)
    assert sent.sent_at is not None
    assert sent.context == {"name": "Alice"}  # no token or link kept once sent
    message = await only_message(mailbox)
    assert message["MessageID"] == f"{delivery.id}@example.com"  # receivers can drop duplicates


async def test_smtp_down_makes_the_delivery_retrying_then_sent_when_smtp_is_back(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    mail_sink: MailSink,
    mailer: Mailer,
    mailbox: httpx.AsyncClient,
    add_delivery: AddDelivery,
    load_delivery: LoadDelivery,
) -> None:
    delivery = await add_delivery()
    await mail_sink.stop()
    before = utcnow()

    await mailer.run_once()

    retrying = await load_delivery(delivery.id)
    assert (retrying.status, retrying.attempts) == ("retrying", 1)
    assert retrying.last_error
    assert "SMTP" in retrying.last_error or "connect" in retrying.last_error.lower()
    # First retry after MAIL_RETRY_BASE_SECONDS (2 s), with jitter: between 1 and 2 s.
    delay = (retrying.next_attempt_at - before).total_seconds()
    assert 0.9 <= delay <= 2.5
    listed = (await client.get(DELIVERIES, params={"status": "retrying"}, headers=admin)).json()
    assert listed["items"][0]["last_error"] == retrying.last_error
    assert await mailer.run_once() == 0  # not due yet

    await mail_sink.start()
    await mailer.run_once(now=retrying.next_attempt_at)

    sent = await load_delivery(delivery.id)
    assert (sent.status, sent.attempts) == ("sent", 2)
    assert sent.last_error == retrying.last_error  # why it took two attempts stays visible
    assert len(await messages(mailbox)) == 1


async def test_delivery_fails_after_the_last_attempt_and_stays_visible(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    mail_sink: MailSink,
    make_mailer: MakeMailer,
    add_delivery: AddDelivery,
    load_delivery: LoadDelivery,
) -> None:
    mailer = make_mailer(MAIL_MAX_ATTEMPTS=3)
    delivery = await add_delivery()
    await mail_sink.stop()
    now = utcnow()

    for attempt in range(1, 4):
        assert await mailer.run_once(now=now) == 1
        row = await load_delivery(delivery.id)
        assert row.attempts == attempt
        now = row.next_attempt_at

    failed = await load_delivery(delivery.id)
    assert failed.status == "failed"
    assert failed.last_error
    assert "token" not in failed.context
    await mail_sink.start()
    assert await mailer.run_once(now=now + timedelta(days=1)) == 0  # never retried again
    response = await client.get(DELIVERIES, params={"status": "failed"}, headers=admin)
    assert response.status_code == 200
    [item] = response.json()["items"]
    assert (item["id"], item["status"], item["attempts"]) == (str(delivery.id), "failed", 3)
    assert item["last_error"] == failed.last_error


async def test_retry_delay_doubles_with_jitter_and_is_capped(make_mailer: MakeMailer) -> None:
    mailer = make_mailer(MAIL_RETRY_BASE_SECONDS=2.0, MAIL_RETRY_MAX_SECONDS=20.0)

    for attempts, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (5, 20.0), (10**6, 20.0)]:
        delays = {mailer.retry_delay(attempts) for _ in range(20)}
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(delays) > 1  # jittered


async def test_delivery_not_due_yet_is_left_alone(
    mailer: Mailer, mailbox: httpx.AsyncClient, add_delivery: AddDelivery
) -> None:
    await add_delivery(next_attempt_at=utcnow() + timedelta(minutes=5))

    assert await mailer.run_once() == 0
    assert await messages(mailbox) == []


async def test_concurrent_mailers_send_each_mail_exactly_once(
    make_mailer: MakeMailer, mailbox: httpx.AsyncClient, add_delivery: AddDelivery, app: FastAPI
) -> None:
    ids = {(await add_delivery(to=f"user{i}@example.com")).id for i in range(12)}
    replicas = [make_mailer(MAIL_BATCH_SIZE=3) for _ in range(4)]

    while sum(await asyncio.gather(*(replica.run_once() for replica in replicas))):
        pass

    assert len(await messages(mailbox)) == 12
    async with app.state.database.sessionmaker() as session:
        for delivery_id in ids:
            row = await session.get(Delivery, delivery_id)
            assert row is not None
            assert (row.status, row.attempts) == ("sent", 1)


async def test_a_crashed_senders_delivery_is_retried_after_its_lease(
    mailer: Mailer,
    mailbox: httpx.AsyncClient,
    add_delivery: AddDelivery,
    load_delivery: LoadDelivery,
) -> None:
    delivery = await add_delivery()
    now = utcnow()
    [claimed] = await mailer._claim(now)  # claimed, then the sender "dies": no outcome

    assert claimed.id == delivery.id
    assert await mailer.run_once(now=now) == 0  # leased: nobody else takes it
    await mailer.run_once(now=now + timedelta(seconds=settings.MAIL_LEASE_SECONDS + 1))

    sent = await load_delivery(delivery.id)
    assert (sent.status, sent.attempts) == ("sent", 2)
    assert len(await messages(mailbox)) == 1


async def test_a_late_outcome_does_not_overwrite_a_newer_attempt(
    mailer: Mailer, add_delivery: AddDelivery, load_delivery: LoadDelivery
) -> None:
    delivery = await add_delivery()
    now = utcnow()
    [stale] = await mailer._claim(now)
    later = now + timedelta(seconds=settings.MAIL_LEASE_SECONDS + 1)
    await mailer.run_once(now=later)  # another sender took over and sent it

    await mailer._record_failure(stale, now, "too late")

    row = await load_delivery(delivery.id)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)


async def test_a_delivery_whose_last_attempt_never_reported_is_failed(
    make_mailer: MakeMailer,
    mailbox: httpx.AsyncClient,
    add_delivery: AddDelivery,
    load_delivery: LoadDelivery,
) -> None:
    mailer = make_mailer(MAIL_MAX_ATTEMPTS=2)
    delivery = await add_delivery(status="retrying", attempts=2)

    await mailer.run_once()

    row = await load_delivery(delivery.id)
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.last_error == "Stopped during the last attempt"
    assert await messages(mailbox) == []


async def test_a_delivery_with_a_broken_template_fails_at_once(
    mailer: Mailer, add_delivery: AddDelivery, load_delivery: LoadDelivery
) -> None:
    missing = await add_delivery(template="no_such_template")
    incomplete = await add_delivery(context={"name": "Alice"})  # no link, no token

    await mailer.run_once()

    for delivery_id in (missing.id, incomplete.id):
        row = await load_delivery(delivery_id)
        assert (row.status, row.attempts) == ("failed", 1)
        assert row.last_error


def test_render_escapes_html_but_not_text() -> None:
    context = {"name": "<script>x</script>", "link": "http://x/?a=1&b=2", "token": "t"}

    text, html = render("verify_email", subject="S", context=context)

    assert "<script>x</script>" in text
    assert "http://x/?a=1&b=2" in text
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert 'href="http://x/?a=1&amp;b=2"' in html


async def test_the_mailer_loop_sends_due_mail_on_its_own(
    make_mailer: MakeMailer, add_delivery: AddDelivery, load_delivery: LoadDelivery
) -> None:
    mailer = make_mailer(MAIL_POLL_INTERVAL=0.05)
    task = asyncio.create_task(mailer.run())
    try:
        delivery = await add_delivery()
        for _ in range(100):  # up to 5 s
            if (await load_delivery(delivery.id)).status == "sent":
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the loop did not send the mail within 5 s")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_mailer_loop_backs_off_while_the_database_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = create_async_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere",
        connect_args={"timeout": 1},
    )
    sessionmaker = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    mailer = Mailer(settings.model_copy(update={"MAIL_POLL_INTERVAL": 0.01}), sessionmaker)
    caplog.set_level(logging.WARNING, logger="notifications.mailer")
    task = asyncio.create_task(mailer.run())
    try:
        await asyncio.sleep(2.5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await engine.dispose()

    failures = [r for r in caplog.records if r.getMessage() == "mailer round failed"]
    # Pauses of 1 s then 2 s: two or three rounds in 2.5 s, not hundreds.
    assert 2 <= len(failures) <= 3
    assert [r.__dict__["in"] for r in failures[:2]] == [1.0, 2.0]


async def test_the_mail_repeats_the_request_id_of_the_event_that_caused_it(
    mailer: Mailer, mailbox: httpx.AsyncClient, alice_id: uuid.UUID
) -> None:
    from notifications.events import HANDLERS
    from servicekit.events.envelope import Envelope
    from servicekit.logging import request_id_var

    data = {"user_id": str(alice_id), "email": "alice@example.com", "reset_token": "tok"}
    envelope = Envelope(
        type="auth.password_reset_requested", producer="auth", data=data, request_id="req-42"
    )
    token = request_id_var.set(envelope.request_id)  # as the consumer does for each event
    try:
        async with mailer.sessionmaker() as session:
            await HANDLERS[envelope.type](session, envelope)
            await session.commit()
    finally:
        request_id_var.reset(token)

    assert await mailer.run_once() == 1
    [summary] = await messages(mailbox)
    headers = (await mailbox.get(f"/api/v1/message/{summary['ID']}/headers")).json()
    assert headers["X-Request-Id"] == ["req-42"]  # canonical names, as Mailpit gives them


class _CountingProxy:
    """A TCP proxy in front of the SMTP sink that counts the connections open at once; each
    is held a moment before it is passed on, so that connections opened together overlap."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.open = self.most = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.most = max(self.most, self.open)
        try:
            await asyncio.sleep(0.2)
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
            await asyncio.gather(
                self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
            )
        finally:
            self.open -= 1
            writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


async def test_a_backlog_larger_than_a_batch_opens_at_most_a_batch_of_smtp_connections(
    make_mailer: MakeMailer,
    mail_sink: MailSink,
    mailbox: httpx.AsyncClient,
    add_delivery: AddDelivery,
    load_delivery: LoadDelivery,
) -> None:
    """The mailer's SMTP connections are bounded by MAIL_BATCH_SIZE: a backlog five batches
    deep waits for later rounds, and every mail of it is sent once."""
    proxy = _CountingProxy(mail_sink.smtp_host, mail_sink.smtp_port)
    port = await proxy.start()
    try:
        ids = [(await add_delivery(to=f"user{i}@example.com")).id for i in range(25)]
        mailer = make_mailer(SMTP_PORT=port, MAIL_BATCH_SIZE=5)
        rounds = 0
        while await mailer.run_once():
            rounds += 1
    finally:
        await proxy.stop()

    assert (rounds, proxy.most) == (5, 5)
    assert len(await messages(mailbox)) == 25
    for delivery_id in ids:
        sent = await load_delivery(delivery_id)
        assert (sent.status, sent.attempts) == ("sent", 1)
