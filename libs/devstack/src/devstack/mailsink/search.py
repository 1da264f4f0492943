"""The subset of Mailpit's search syntax that tests use.

Supported: plain words and "quoted phrases" (subject, addresses, body, file names),
`to:` `from:` `cc:` `bcc:` `reply-to:` `addressed:` `subject:` `message-id:` `tag:`,
`is:read` `is:unread` `has:attachment` `has:inline`, and negation with a leading `-` or
`!`. Like Mailpit, every term must match, matching is a case-insensitive substring test,
and address terms match the display name as well as the address.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

from devstack.mailsink.message import Address, Message

__all__ = ["compile_query"]

Predicate = Callable[[Message], bool]

_ADDRESS_FIELDS: dict[str, Callable[[Message], list[Address]]] = {
    "to": lambda m: m.to,
    "from": lambda m: [m.from_] if m.from_ else [],
    "cc": lambda m: m.cc,
    "bcc": lambda m: m.bcc,
    "reply-to": lambda m: m.reply_to,
    "addressed": lambda m: [*([m.from_] if m.from_ else []), *m.to, *m.cc, *m.bcc, *m.reply_to],
}

_FLAGS: dict[str, Predicate] = {
    "is:read": lambda m: m.read,
    "is:unread": lambda m: not m.read,
    "has:attachment": lambda m: bool(m.attachments),
    "has:attachments": lambda m: bool(m.attachments),
    "has:inline": lambda m: bool(m.inline),
}


def compile_query(query: str) -> Predicate:
    """Turn a Mailpit search string into a predicate over messages."""
    predicates = [_term(token) for token in _tokens(query)]
    active = [p for p in predicates if p is not None]
    return lambda message: all(p(message) for p in active)


def _tokens(query: str) -> list[str]:
    try:
        return shlex.split(query)  # keeps "quoted phrases" (and to:"Jane Doe") together
    except ValueError:  # unbalanced quote: fall back to plain words
        return query.split()


def _term(token: str) -> Predicate | None:
    negate = len(token) > 1 and token[0] in "-!"
    if negate:
        token = token[1:]
    if not re.search(r"[a-zA-Z0-9]", token):
        return None  # Mailpit ignores terms without letters or digits
    predicate = _positive_term(token)
    if negate:
        return lambda message: not predicate(message)
    return predicate


def _positive_term(token: str) -> Predicate:
    lowered = token.lower()
    if lowered in _FLAGS:
        return _FLAGS[lowered]
    prefix, _, value = lowered.partition(":")
    if value and prefix in _ADDRESS_FIELDS:
        addresses = _ADDRESS_FIELDS[prefix]
        return lambda m: any(value in str(a).lower() for a in addresses(m))
    if value and prefix == "subject":
        return lambda m: value in m.subject.lower()
    if value and prefix == "message-id":
        return lambda m: value in m.message_id.lower()
    if value and prefix == "tag":
        return lambda m: value in (t.lower() for t in m.tags)
    return lambda m: lowered in m.search_text
