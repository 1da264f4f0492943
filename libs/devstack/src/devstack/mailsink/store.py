"""In-memory mailbox shared by the SMTP side (writes) and the HTTP API (reads)."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from devstack.mailsink.message import Message
from devstack.mailsink.search import compile_query

__all__ = ["MessageStore"]


class MessageStore:
    """Messages in arrival order, served newest first.

    A lock guards every access so the store can also be inspected from another thread
    (for example a synchronous test talking to a sink running in a background loop).
    `max_messages` bounds memory during long load tests; the oldest messages go first,
    as with Mailpit's own limit. 0 means unlimited.
    """

    def __init__(self, max_messages: int = 5000) -> None:
        self.max_messages = max_messages
        self._messages: dict[str, Message] = {}  # dicts keep insertion (= arrival) order
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)

    def add(self, message: Message) -> Message:
        with self._lock:
            self._messages[message.id] = message
            while self.max_messages and len(self._messages) > self.max_messages:
                del self._messages[next(iter(self._messages))]
        return message

    def get(self, message_id: str, *, mark_read: bool = False) -> Message | None:
        """Look a message up; "latest" means the newest one, as in Mailpit's API."""
        with self._lock:
            if message_id == "latest":
                message = next(reversed(self._messages.values()), None)
            else:
                message = self._messages.get(message_id)
            if message is not None and mark_read:
                message.read = True
            return message

    def newest_first(self) -> list[Message]:
        with self._lock:
            return list(reversed(self._messages.values()))

    def search(self, query: str) -> list[Message]:
        """Messages matching a Mailpit search query, newest first."""
        matches = compile_query(query)
        return [m for m in self.newest_first() if matches(m)]

    def counts(self) -> tuple[int, int]:
        """(total, unread) for the whole mailbox."""
        with self._lock:
            unread = sum(not m.read for m in self._messages.values())
            return len(self._messages), unread

    def delete(self, message_ids: Iterable[str] | None = None) -> int:
        """Delete the given messages, or all of them when `message_ids` is None."""
        with self._lock:
            if message_ids is None:
                deleted = len(self._messages)
                self._messages.clear()
                return deleted
            removed = [self._messages.pop(i, None) for i in set(message_ids)]
            return sum(m is not None for m in removed)
