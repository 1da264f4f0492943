"""Turn raw SMTP data into the message model behind Mailpit's JSON.

Field names and shapes follow Mailpit's API v1 (`MessageSummary` and `Message` in its
swagger spec), so tests written against a real Mailpit run unchanged against the sink.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from email.utils import getaddresses
from html.parser import HTMLParser
from typing import Any, cast

__all__ = ["Address", "Attachment", "Message", "new_id", "parse_message", "rfc3339"]

_ID_ALPHABET = string.ascii_letters + string.digits
_SNIPPET_LENGTH = 250

JSON = dict[str, Any]


def new_id() -> str:
    """A 22-character random ID, URL-safe, the same length as Mailpit's IDs."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


def rfc3339(moment: datetime) -> str:
    """Format like Go's RFC3339Nano, which is what Mailpit emits ("...Z" for UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text = moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


@dataclass(frozen=True, slots=True)
class Address:
    name: str
    address: str

    def to_json(self) -> JSON:
        return {"Name": self.name, "Address": self.address}

    def __str__(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


@dataclass(frozen=True, slots=True)
class Attachment:
    part_id: str
    file_name: str
    content_type: str
    content_id: str
    content: bytes

    def to_json(self) -> JSON:
        return {
            "PartID": self.part_id,
            "FileName": self.file_name,
            "ContentType": self.content_type,
            "ContentID": self.content_id,
            "Size": len(self.content),
            "Checksums": {
                "MD5": hashlib.md5(self.content, usedforsecurity=False).hexdigest(),
                "SHA1": hashlib.sha1(self.content, usedforsecurity=False).hexdigest(),
                "SHA256": hashlib.sha256(self.content).hexdigest(),
            },
        }


@dataclass(slots=True)
class Message:
    """One received message; `raw` is kept so /raw and /headers can serve it verbatim."""

    id: str
    raw: bytes
    created: datetime
    date: datetime
    message_id: str
    from_: Address | None
    to: list[Address]
    cc: list[Address]
    bcc: list[Address]
    reply_to: list[Address]
    return_path: str
    subject: str
    text: str
    html: str
    attachments: list[Attachment] = field(default_factory=list)
    inline: list[Attachment] = field(default_factory=list)
    username: str = ""
    read: bool = False
    tags: list[str] = field(default_factory=list)
    search_text: str = ""  # lower-cased haystack for plain-word searches

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def snippet(self) -> str:
        """Start of the body as one line, like Mailpit's list view (max 250 chars)."""
        body = " ".join((self.text or html_to_text(self.html)).split())
        if len(body) > _SNIPPET_LENGTH:
            return body[:_SNIPPET_LENGTH] + "..."
        return body

    def part(self, part_id: str) -> Attachment | None:
        return next((a for a in [*self.attachments, *self.inline] if a.part_id == part_id), None)

    def summary_json(self) -> JSON:
        """Mailpit `MessageSummary`: one entry of GET /api/v1/messages and /search."""
        return {
            "ID": self.id,
            "MessageID": self.message_id,
            "Read": self.read,
            "From": self.from_.to_json() if self.from_ else None,
            "To": [a.to_json() for a in self.to],
            "Cc": [a.to_json() for a in self.cc],
            "Bcc": [a.to_json() for a in self.bcc],
            "ReplyTo": [a.to_json() for a in self.reply_to],
            "Subject": self.subject,
            "Created": rfc3339(self.created),
            "Username": self.username,
            "Tags": list(self.tags),
            "Size": self.size,
            "Attachments": len(self.attachments),
            "Snippet": self.snippet,
        }

    def detail_json(self) -> JSON:
        """Mailpit `Message`: the body of GET /api/v1/message/{ID}."""
        return {
            "ID": self.id,
            "MessageID": self.message_id,
            "From": self.from_.to_json() if self.from_ else None,
            "To": [a.to_json() for a in self.to],
            "Cc": [a.to_json() for a in self.cc],
            "Bcc": [a.to_json() for a in self.bcc],
            "ReplyTo": [a.to_json() for a in self.reply_to],
            "ReturnPath": self.return_path,
            "Subject": self.subject,
            "ListUnsubscribe": {"Header": "", "Links": [], "Errors": "", "HeaderPost": ""},
            "Date": rfc3339(self.date),
            "Tags": list(self.tags),
            "Username": self.username,
            "Text": self.text,
            "HTML": self.html,
            "Size": self.size,
            "Inline": [a.to_json() for a in self.inline],
            "Attachments": [a.to_json() for a in self.attachments],
        }

    def headers_json(self) -> dict[str, list[str]]:
        """Mailpit's GET /message/{ID}/headers: canonical names, sorted, values as lists."""
        headers: dict[str, list[str]] = {}
        for name, value in _parse(self.raw, headers_only=True).items():
            canonical = "-".join(word.capitalize() for word in name.split("-"))
            headers.setdefault(canonical, []).append(str(value))
        return dict(sorted(headers.items()))


def parse_message(
    raw: bytes,
    *,
    envelope_from: str = "",
    envelope_recipients: Sequence[str] = (),
    username: str = "",
    received: datetime | None = None,
) -> Message:
    """Parse raw RFC 5322 bytes as received over SMTP.

    Envelope recipients missing from To/Cc/Bcc headers are reported as Bcc, because that
    is exactly what a Bcc is on the wire (and what Mailpit shows).
    """
    msg = _parse(raw)
    received = received or datetime.now(UTC)

    to, cc = _addresses(msg, "To"), _addresses(msg, "Cc")
    bcc = _addresses(msg, "Bcc")
    listed = {a.address.lower() for a in [*to, *cc, *bcc]}
    bcc += [Address("", rcpt) for rcpt in envelope_recipients if rcpt.lower() not in listed]
    senders = _addresses(msg, "From")

    text_part = msg.get_body(preferencelist=("plain",))
    html_part = msg.get_body(preferencelist=("html",))
    html = _text_content(html_part) if html_part is not None else ""
    # Like Mailpit, an HTML-only message still gets a readable Text version.
    text = _text_content(text_part) if text_part is not None else html_to_text(html)
    attachments, inline = _split_attachments(msg, body_parts=(text_part, html_part))

    message = Message(
        id=new_id(),
        raw=raw,
        created=received,
        date=_header_date(msg) or received,
        message_id=str(msg.get("Message-ID", "")).strip().strip("<>"),
        from_=senders[0] if senders else None,
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=_addresses(msg, "Reply-To"),
        return_path=str(msg.get("Return-Path", envelope_from)).strip().strip("<>"),
        subject=str(msg.get("Subject", "")),
        text=text,
        html=html,
        attachments=attachments,
        inline=inline,
        username=username,
    )
    if not message.message_id:
        message.message_id = f"{message.id}@mailsink"
    message.search_text = " ".join(
        [
            message.subject,
            *(str(a) for a in [*senders, *to, *cc, *bcc, *message.reply_to]),
            text,
            html_to_text(html),
            *(a.file_name for a in attachments),
        ]
    ).lower()
    return message


def _parse(raw: bytes, headers_only: bool = False) -> EmailMessage:
    """policy.default gives EmailMessage objects with decoded headers and get_body()."""
    parser = BytesParser(policy=policy.default)
    return cast(EmailMessage, parser.parsebytes(raw, headersonly=headers_only))


def _addresses(msg: EmailMessage, header: str) -> list[Address]:
    result: list[Address] = []
    for value in msg.get_all(header, []):
        try:
            parsed = [(a.display_name, a.addr_spec) for a in value.addresses]
        except (AttributeError, ValueError):  # badly formed header: best effort
            parsed = getaddresses([str(value)])
        result += [Address(name, addr) for name, addr in parsed if addr]
    return result


def _header_date(msg: EmailMessage) -> datetime | None:
    header = msg.get("Date")
    moment = getattr(header, "datetime", None)
    return moment if isinstance(moment, datetime) else None


def _text_content(part: MIMEPart) -> str:
    """Decoded body text with "\n" line ends (SMTP delivers "\r\n").

    Falls back to UTF-8 when the declared charset is unknown.
    """
    try:
        content = part.get_content()
    except (LookupError, UnicodeDecodeError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content.replace("\r\n", "\n") if isinstance(content, str) else ""


def _leaf_parts(part: MIMEPart, part_id: str = "") -> Iterator[tuple[str, MIMEPart]]:
    """Non-multipart parts with MIME part IDs ("1", "2.1", ...) as Mailpit numbers them."""
    if part.get_content_maintype() != "multipart":
        yield part_id or "1", part
        return
    for index, child in enumerate(part.iter_parts(), start=1):
        yield from _leaf_parts(child, f"{part_id}.{index}" if part_id else str(index))


def _split_attachments(
    msg: EmailMessage, body_parts: Sequence[MIMEPart | None]
) -> tuple[list[Attachment], list[Attachment]]:
    """Sort non-body parts into (attachments, inline): inline ones are referenced by cid."""
    attachments: list[Attachment] = []
    inline: list[Attachment] = []
    for part_id, part in _leaf_parts(msg):
        if any(part is body for body in body_parts):
            continue
        disposition = part.get_content_disposition()
        content_id = str(part.get("Content-ID", "")).strip().strip("<>")
        if disposition is None and part.get_content_maintype() == "text" and not content_id:
            continue  # an extra text alternative, not a file
        attachment = Attachment(
            part_id=part_id,
            file_name=part.get_filename() or "",
            content_type=part.get_content_type(),
            content_id=content_id,
            content=_part_bytes(part),
        )
        is_inline = disposition != "attachment" and (content_id or disposition == "inline")
        (inline if is_inline else attachments).append(attachment)
    return attachments, inline


def _part_bytes(part: MIMEPart) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    inner = part.get_payload()  # message/rfc822: the attached message itself
    if isinstance(inner, list) and inner and isinstance(inner[0], MIMEPart):
        return inner[0].as_bytes()
    return b""


class _TextExtractor(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title"})
    _BREAK = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BREAK:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BREAK:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML body: good enough for snippets and searching."""
    if not html:
        return ""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    lines = (" ".join(line.split()) for line in "".join(extractor.chunks).splitlines())
    return "\n".join(line for line in lines if line)
