"""Mail sink: real SMTP in, real HTTP out, asserting Mailpit's API v1 JSON shapes."""

from __future__ import annotations

import asyncio
import re
import select
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio

from devstack.mailsink import MailSink
from devstack.ports import free_port

# Keys of Mailpit's MessagesSummary and MessageSummary (swagger, API v1).
LIST_KEYS = {"total", "unread", "count", "messages_count", "start", "tags", "messages"}
SUMMARY_KEYS = {
    "ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "ReplyTo",
    "Subject", "Created", "Tags", "Size", "Attachments", "Snippet",
}  # fmt: skip
MESSAGE_KEYS = {
    "ID", "MessageID", "From", "To", "Cc", "Bcc", "ReplyTo", "ReturnPath", "Subject",
    "Date", "Tags", "Text", "HTML", "Size", "Inline", "Attachments",
}  # fmt: skip


def make_mail(
    subject: str,
    to: str = "Alice Example <alice@example.com>, bob@example.com",
    *,
    text: str = "Hello from the text part.",
    html: str | None = "<p>Hello from the <b>HTML</b> part.</p>",
    cc: str | None = None,
) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Platform <noreply@platform.test>"
    mail["To"] = to
    if cc:
        mail["Cc"] = cc
    mail["Subject"] = subject
    mail["Date"] = format_datetime(datetime.fromisoformat("2024-05-01T10:00:00+02:00"))
    mail["Message-ID"] = f"<{re.sub(r'[^a-z0-9]+', '-', subject.lower()).strip('-')}@platform.test>"
    mail.set_content(text)
    if html is not None:
        mail.add_alternative(html, subtype="html")
    return mail


def smtp_send(host: str, port: int, mail: EmailMessage, to_addrs: Iterable[str] = ()) -> None:
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        smtp.send_message(mail, to_addrs=list(to_addrs) or None)


async def send(sink: MailSink, mail: EmailMessage, to_addrs: Iterable[str] = ()) -> None:
    """Blocking smtplib runs in a thread: the sink shares this test's event loop."""
    await asyncio.to_thread(smtp_send, sink.smtp_host, sink.smtp_port, mail, to_addrs)


@pytest_asyncio.fixture
async def sink() -> AsyncIterator[MailSink]:
    async with MailSink(smtp_port=0, http_port=0) as running:  # 0: any free port
        yield running


@pytest_asyncio.fixture
async def api(sink: MailSink) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sink.api_url, timeout=5) as client:
        yield client


async def list_messages(api: httpx.AsyncClient, **params: int) -> dict[str, Any]:
    response = await api.get("/api/v1/messages", params=params)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.asyncio
async def test_multipart_mail_to_two_recipients(sink: MailSink, api: httpx.AsyncClient) -> None:
    mail = make_mail("Welcome aboard")
    # A third envelope recipient that is in no header is, by definition, a Bcc.
    await send(sink, mail, ["alice@example.com", "bob@example.com", "audit@platform.test"])

    listing = await list_messages(api)
    assert LIST_KEYS <= listing.keys()
    assert listing["total"] == listing["messages_count"] == listing["count"] == 1
    assert listing["unread"] == 1
    assert listing["start"] == 0
    assert listing["tags"] == []
    [summary] = listing["messages"]
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["MessageID"] == "welcome-aboard@platform.test"
    assert summary["Read"] is False
    assert summary["From"] == {"Name": "Platform", "Address": "noreply@platform.test"}
    assert summary["To"] == [
        {"Name": "Alice Example", "Address": "alice@example.com"},
        {"Name": "", "Address": "bob@example.com"},
    ]
    assert summary["Cc"] == []
    assert summary["Bcc"] == [{"Name": "", "Address": "audit@platform.test"}]
    assert summary["ReplyTo"] == []
    assert summary["Subject"] == "Welcome aboard"
    assert datetime.fromisoformat(summary["Created"]).tzinfo is not None
    assert summary["Tags"] == []
    assert summary["Size"] > 0
    assert summary["Attachments"] == 0
    assert summary["Snippet"] == "Hello from the text part."

    response = await api.get(f"/api/v1/message/{summary['ID']}")
    assert response.status_code == 200
    message = response.json()
    assert MESSAGE_KEYS <= message.keys()
    assert message["ID"] == summary["ID"]
    assert message["To"] == summary["To"]
    assert message["From"] == summary["From"]
    assert message["Subject"] == "Welcome aboard"
    assert message["Date"] == "2024-05-01T10:00:00+02:00"
    assert message["ReturnPath"] == "noreply@platform.test"
    assert message["Text"] == "Hello from the text part.\n"
    assert message["HTML"] == "<p>Hello from the <b>HTML</b> part.</p>\n"
    assert message["Size"] == summary["Size"]
    assert message["Attachments"] == message["Inline"] == []

    # Like Mailpit, fetching a message marks it read.
    listing = await list_messages(api)
    assert listing["unread"] == 0
    assert listing["messages"][0]["Read"] is True

    latest = await api.get("/api/v1/message/latest")
    assert latest.json()["ID"] == summary["ID"]
    raw = await api.get(f"/api/v1/message/{summary['ID']}/raw")
    assert b"Subject: Welcome aboard" in raw.content
    headers = (await api.get(f"/api/v1/message/{summary['ID']}/headers")).json()
    assert headers["Message-Id"] == ["<welcome-aboard@platform.test>"]


@pytest.mark.asyncio
async def test_unknown_message_is_404(api: httpx.AsyncClient) -> None:
    for path in ("/api/v1/message/nope", "/api/v1/message/latest", "/api/v1/message/nope/raw"):
        assert (await api.get(path)).status_code == 404


@pytest.mark.asyncio
async def test_list_is_newest_first_and_paginates(sink: MailSink, api: httpx.AsyncClient) -> None:
    for subject in ("first", "second", "third"):
        await send(sink, make_mail(subject))

    listing = await list_messages(api)
    assert [m["Subject"] for m in listing["messages"]] == ["third", "second", "first"]

    page = await list_messages(api, start=1, limit=1)
    assert [m["Subject"] for m in page["messages"]] == ["second"]
    assert (page["start"], page["count"], page["messages_count"], page["total"]) == (1, 1, 3, 3)


@pytest.mark.asyncio
async def test_search(sink: MailSink, api: httpx.AsyncClient) -> None:
    await send(sink, make_mail("Reset your password", to="carol@example.com"))
    await send(sink, make_mail("Welcome Carol", to="Carol C <carol@example.com>"))
    await send(sink, make_mail("Invoice 42", to="dave@example.com", cc="carol@example.com"))

    async def subjects(query: str) -> list[str]:
        response = await api.get("/api/v1/search", params={"query": query})
        assert response.status_code == 200
        body = response.json()
        assert LIST_KEYS <= body.keys()
        assert body["total"] == 3  # the whole mailbox, like Mailpit
        assert body["messages_count"] == len(body["messages"])
        return [m["Subject"] for m in body["messages"]]

    assert await subjects("to:carol@example.com") == ["Welcome Carol", "Reset your password"]
    assert await subjects("password") == ["Reset your password"]
    assert await subjects("PASSWORD reset") == ["Reset your password"]  # every word must match
    assert await subjects("subject:invoice") == ["Invoice 42"]
    assert await subjects("cc:carol") == ["Invoice 42"]
    assert await subjects('to:"Carol C"') == ["Welcome Carol"]
    assert await subjects("to:carol -welcome") == ["Reset your password"]
    assert await subjects("from:noreply@platform.test") == [
        "Invoice 42",
        "Welcome Carol",
        "Reset your password",
    ]
    assert await subjects("no-such-word") == []
    assert (await api.get("/api/v1/search", params={"query": " "})).status_code == 400


@pytest.mark.asyncio
async def test_delete_by_ids_then_all(sink: MailSink, api: httpx.AsyncClient) -> None:
    for subject in ("keep me", "delete me", "me too"):
        await send(sink, make_mail(subject))
    ids = {m["Subject"]: m["ID"] for m in (await list_messages(api))["messages"]}

    response = await api.request(
        "DELETE", "/api/v1/messages", json={"IDs": [ids["delete me"], ids["me too"]]}
    )
    assert response.status_code == 200
    listing = await list_messages(api)
    assert [m["Subject"] for m in listing["messages"]] == ["keep me"]
    assert (await api.get(f"/api/v1/message/{ids['delete me']}")).status_code == 404

    assert (await api.delete("/api/v1/messages")).status_code == 200
    listing = await list_messages(api)
    assert (listing["total"], listing["messages"]) == (0, [])


@pytest.mark.asyncio
async def test_encoded_content_and_attachments(sink: MailSink, api: httpx.AsyncClient) -> None:
    mail = make_mail(
        "Ünïcode façade ✓",
        text="Grüße, your code is 123456 " + "x" * 300,
        html="<p>Grüße — <a href='https://platform.test/verify?t=abc'>verify</a></p>",
    )
    mail.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="a.pdf")
    await send(sink, mail)

    [summary] = (await list_messages(api))["messages"]
    assert summary["Subject"] == "Ünïcode façade ✓"
    assert summary["Attachments"] == 1
    assert len(summary["Snippet"]) == 253 and summary["Snippet"].endswith("...")

    message = (await api.get(f"/api/v1/message/{summary['ID']}")).json()
    assert "123456" in message["Text"]
    assert "https://platform.test/verify?t=abc" in message["HTML"]
    [attachment] = message["Attachments"]
    assert attachment["FileName"] == "a.pdf"
    assert attachment["ContentType"] == "application/pdf"
    assert attachment["Size"] == len(b"%PDF-1.4 fake")
    assert set(attachment["Checksums"]) == {"MD5", "SHA1", "SHA256"}

    part = await api.get(f"/api/v1/message/{summary['ID']}/part/{attachment['PartID']}")
    assert part.content == b"%PDF-1.4 fake"
    assert part.headers["content-type"] == "application/pdf"

    response = await api.get("/api/v1/search", params={"query": "grüße"})
    assert response.json()["messages_count"] == 1


@pytest.mark.asyncio
async def test_smtp_login_is_accepted_and_recorded(sink: MailSink, api: httpx.AsyncClient) -> None:
    def send_with_login() -> None:
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port, timeout=10) as smtp:
            smtp.login("notifications", "any-password")
            smtp.send_message(make_mail("Authenticated"))

    await asyncio.to_thread(send_with_login)
    [summary] = (await list_messages(api))["messages"]
    assert summary["Username"] == "notifications"


@pytest.mark.asyncio
async def test_outage_and_restart_on_same_ports(sink: MailSink, api: httpx.AsyncClient) -> None:
    await send(sink, make_mail("before the outage"))
    smtp_port, http_port = sink.smtp_port, sink.http_port

    await sink.stop()
    with pytest.raises(OSError):
        await send(sink, make_mail("during the outage"))
    with pytest.raises(httpx.ConnectError):
        await api.get("/api/v1/messages")

    await sink.start()
    assert (sink.smtp_port, sink.http_port) == (smtp_port, http_port)
    await send(sink, make_mail("after the outage"))
    subjects = [m["Subject"] for m in (await list_messages(api))["messages"]]
    assert subjects == ["after the outage", "before the outage"]  # the store survives


def test_cli_serves_until_sigterm() -> None:
    smtp_port, http_port = free_port(), free_port()
    argv = [sys.executable, "-m", "devstack.mailsink"]
    ports = ["--smtp-port", str(smtp_port), "--http-port", str(http_port)]
    with subprocess.Popen(  # noqa: S603 - our own module, fixed argv
        [*argv, *ports], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        try:
            began = time.monotonic()
            ready, _, _ = select.select([process.stdout], [], [], 15)
            assert ready, "no ready line within 15s"
            line = process.stdout.readline().strip()
            assert line == (
                f"mailsink ready smtp://127.0.0.1:{smtp_port} http://127.0.0.1:{http_port}"
            )
            assert time.monotonic() - began < 5

            # A second instance on the same ports fails fast with a one-line reason.
            clash = subprocess.run(  # noqa: S603 - our own module, fixed argv
                [*argv, *ports], capture_output=True, text=True, timeout=15, check=False
            )
            assert clash.returncode == 1
            assert clash.stderr == f"mailsink: port {smtp_port} on 127.0.0.1 is already in use\n"

            smtp_send("127.0.0.1", smtp_port, make_mail("via the CLI"))
            listing = httpx.get(f"http://127.0.0.1:{http_port}/api/v1/messages", timeout=5)
            assert [m["Subject"] for m in listing.json()["messages"]] == ["via the CLI"]
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
