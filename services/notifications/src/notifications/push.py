"""Real-time fan-out of new notifications through Redis pub/sub, published after commit.

Publish side: code that creates a notification calls `stage()` in its transaction. A
SQLAlchemy `after_commit` hook publishes what was staged once the *outermost* transaction
has committed, and only for notifications that really were committed (a rolled-back
savepoint or transaction publishes nothing). Handlers therefore need nothing from the
event consumer: it commits as it always does, and the push follows. The hook needs a
Redis client, which the app's lifespan hands over with `install()`.

A push is best effort: the notification is in the database either way, and a client
that (re)connects reads what it missed with `GET /`.

Subscribe side: each process holds one `Hub`: one Redis connection, one pattern
subscription covering every user's channel, and a hand-off of each message to the
sockets of that user connected to this process. Every replica thus sees every push;
at the rate notifications are made that costs nothing, and it spares a connection per
socket and the subscribe/unsubscribe churn. Channels are per user, so moving to
per-channel SUBSCRIBE later changes only the hub.
"""

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.exceptions
from redis.asyncio import Redis
from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from notifications.models import Notification, NotificationPublic

logger = logging.getLogger(__name__)

CHANNEL_PREFIX = "notifications:user:"
CHANNEL_PATTERN = f"{CHANNEL_PREFIX}*"
_STAGED = "notifications.push.staged"
DRAIN_SECONDS = 5.0

RedisFailure = (redis.exceptions.RedisError, OSError)


def channel_for(user_id: uuid.UUID) -> str:
    return f"{CHANNEL_PREFIX}{user_id}"


# ---- publish after commit -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Staged:
    notification: Notification
    channel: str
    payload: str


def stage(session: AsyncSession, notification: Notification) -> None:
    """Push `notification` to its user's sockets if, and once, the transaction commits."""
    # Serialised now: after the commit the attributes may be expired and cannot be loaded
    # from a synchronous hook.
    payload = NotificationPublic.model_validate(notification).model_dump_json()
    staged = _Staged(notification, channel_for(notification.user_id), payload)
    session.info.setdefault(_STAGED, []).append(staged)


@event.listens_for(Session, "after_commit")
def _publish_committed(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released: the outer transaction may still roll back
    staged: list[_Staged] = session.info.pop(_STAGED, [])
    # Rows added inside a savepoint that rolled back were expunged; deleted ones detached.
    messages = [(s.channel, s.payload) for s in staged if inspect(s.notification).persistent]
    if not messages:
        return
    if _publisher is None:
        logger.warning("no publisher installed; pushes dropped", extra={"count": len(messages)})
        return
    _publisher.publish_soon(messages)


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_STAGED, None)


class Publisher:
    """Publishes in background tasks: a commit hook cannot await, and must not fail."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._tasks: set[asyncio.Task[None]] = set()

    def publish_soon(self, messages: list[tuple[str, str]]) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self.publish(messages))
        except RuntimeError:  # committed outside an event loop (a script): nobody listens
            logger.warning("no event loop; pushes dropped", extra={"count": len(messages)})
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def publish(self, messages: list[tuple[str, str]]) -> None:
        for channel, payload in messages:
            try:
                await self.redis.publish(channel, payload)
            except RedisFailure as exc:
                logger.warning("push not published", extra={"channel": channel, "err": str(exc)})

    async def aclose(self) -> None:
        """Let pushes already on their way reach Redis before the client closes."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=DRAIN_SECONDS)


_publisher: Publisher | None = None


def install(publisher: Publisher | None) -> None:
    """Where committed pushes go (None: nowhere). Called by the app's lifespan."""
    global _publisher
    _publisher = publisher


# ---- subscribe and fan out ----------------------------------------------------------------


class Hub:
    """This process's subscription to every user's channel, fanned out to local sockets."""

    def __init__(self, redis: Redis, *, queue_size: int = 100, poll_timeout: float = 1.0) -> None:
        self.redis = redis
        self.queue_size = queue_size
        self.poll_timeout = poll_timeout
        self._inboxes: defaultdict[str, set[asyncio.Queue[str]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notifications-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def listeners(self, user_id: uuid.UUID) -> int:
        """Sockets of `user_id` connected to this process."""
        return len(self._inboxes.get(channel_for(user_id), ()))

    @contextlib.asynccontextmanager
    async def listen(self, user_id: uuid.UUID) -> AsyncIterator[asyncio.Queue[str]]:
        """A queue receiving the user's new notifications (as JSON) while the block runs."""
        channel = channel_for(user_id)
        inbox: asyncio.Queue[str] = asyncio.Queue(self.queue_size)
        self._inboxes[channel].add(inbox)
        try:
            yield inbox
        finally:
            self._inboxes[channel].discard(inbox)
            if not self._inboxes[channel]:
                del self._inboxes[channel]

    def _dispatch(self, channel: str, payload: str) -> None:
        for inbox in self._inboxes.get(channel, ()):
            try:
                inbox.put_nowait(payload)
            except asyncio.QueueFull:
                # A client that does not read: it catches up with GET / when it reconnects.
                logger.warning("socket queue full; push dropped", extra={"channel": channel})

    async def _run(self) -> None:
        """Stay subscribed: reconnect with backoff whenever Redis goes away."""
        backoff = 0.5
        while True:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.psubscribe(CHANNEL_PATTERN)
                    self.subscribed.set()
                    backoff = 0.5
                    while True:
                        # A bounded wait (not a blocking listen) lets the client's health
                        # checks notice a connection that died silently.
                        message = await pubsub.get_message(timeout=self.poll_timeout)
                        if message is not None and message["type"] == "pmessage":
                            self._dispatch(message["channel"], message["data"])
            except RedisFailure as exc:
                logger.warning(
                    "push subscription lost; retrying", extra={"err": str(exc), "in": backoff}
                )
            except Exception:
                # Whatever it was, sockets must not silently stop receiving for good.
                logger.exception("push subscription failed; retrying", extra={"in": backoff})
            self.subscribed.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
