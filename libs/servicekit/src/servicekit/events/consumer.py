"""The consumer: reads the stream through this service's consumer group and handles events.

Each event is handled in one database transaction together with a record of its id,
and acknowledged only after that commits; a redelivered event finds its id recorded
and has no second effect. A consumer that has not polled the stream for `dead_after_ms`
(a few block periods: it crashed, or was restarted under a new name) has its pending
messages taken over by the next pass of any other, ahead of anything new; any other
message left pending is claimed after `claim_idle_ms`. A handler that keeps failing
parks its event in the dead-letter stream with the error, so the events behind it
still flow. An unreachable database or Redis is not the event's fault: the message
stays pending and is retried.
"""

import asyncio
import json
import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

import redis.exceptions
from pydantic import ValidationError
from redis.asyncio import Redis
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from servicekit import metrics, tracing
from servicekit.background import sleep_unless_stopped
from servicekit.db import is_database_busy, is_database_unavailable
from servicekit.events.envelope import Envelope, Handler
from servicekit.events.processed import ProcessedEvent
from servicekit.logging import request_id_var
from servicekit.timestamps import utcnow

logger = logging.getLogger(__name__)


def is_transient(exc: BaseException) -> bool:
    """A failure that says nothing about the event: retry it later, never dead-letter it."""
    redis_down = isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError)
    return redis_down or is_database_unavailable(exc) or is_database_busy(exc)


def _is_missing_group(exc: BaseException) -> bool:
    """Redis lost the stream (restarted empty, flushed): the group must be created again."""
    return isinstance(exc, redis.exceptions.ResponseError) and "NOGROUP" in str(exc)


class EventConsumer:
    def __init__(
        self,
        *,
        group: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        handlers: Mapping[str, Handler],
        stream: str,
        consumer_name: str | None = None,
        claim_idle_ms: int = 30_000,
        max_attempts: int = 3,
        retry_delay: float = 0.2,
        block_ms: int = 1000,
        batch_size: int = 50,
        dead_after_ms: int | None = None,
    ) -> None:
        self.group, self.sessionmaker, self.redis = group, sessionmaker, redis
        self.handlers, self.stream = dict(handlers), stream
        self.dead_letter_stream = f"{stream}.dead-letter"
        self.name = consumer_name or f"{socket.gethostname()}-{os.getpid()}"
        self.claim_idle_ms, self.max_attempts = claim_idle_ms, max_attempts
        self.retry_delay, self.block_ms, self.batch_size = retry_delay, block_ms, batch_size
        # A live consumer asks Redis for more at least once per block period.
        self.dead_after_ms = dead_after_ms if dead_after_ms is not None else max(3 * block_ms, 1000)

    async def ensure_group(self) -> None:
        """From id 0: events published before this service first ran are still handled."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.1
        recovering = True  # on start, and after an outage: our own pending messages first
        while not stop.is_set():
            try:
                if recovering:
                    await self.ensure_group()
                    await self.consume_pending()
                    recovering = False
                await self.claim_from_dead_consumers()
                await self.claim_abandoned()
                await self.consume_new()
                backoff = 0.1
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any failure
                if is_transient(exc) or _is_missing_group(exc):
                    logger.warning(
                        "event consumer paused", extra={"err": str(exc), "group": self.group}
                    )
                else:
                    logger.exception("event consumer failed; retrying", extra={"group": self.group})
                recovering = True
                await sleep_unless_stopped(stop, backoff)
                backoff = min(backoff * 2, 5.0)

    async def consume_new(self, block_ms: int | None = None) -> int:
        """Read and handle what no consumer of the group has seen yet; return how many."""
        replies = await self.redis.xreadgroup(
            self.group,
            self.name,
            {self.stream: ">"},
            count=self.batch_size,
            block=self.block_ms if block_ms is None else block_ms,
        )
        return await self._handle_replies(replies)

    async def consume_pending(self) -> int:
        """Messages this consumer read but never acknowledged (it crashed or lost a backend)."""
        replies = await self.redis.xreadgroup(
            self.group, self.name, {self.stream: "0"}, count=self.batch_size
        )
        return await self._handle_replies(replies)

    async def claim_from_dead_consumers(self) -> int:
        """Take over what consumers that stopped polling still hold; forget the empty ones.

        Their messages are claimed only if still idle for `dead_after_ms`, so of two
        consumers doing this at once one gets each message.
        """
        handled = 0
        for consumer in await self.redis.xinfo_consumers(self.stream, self.group):
            name, pending, idle = consumer["name"], consumer["pending"], consumer["idle"]
            if name == self.name or idle < self.dead_after_ms:
                continue
            if not pending:
                if idle >= max(self.claim_idle_ms, self.dead_after_ms):
                    await self.redis.xgroup_delconsumer(self.stream, self.group, name)
                continue
            entries = await self.redis.xpending_range(
                self.stream, self.group, "-", "+", self.batch_size, consumername=name
            )
            message_ids: list[Any] = [entry["message_id"] for entry in entries]
            if message_ids:
                handled += await self._handle_claimed(
                    await self.redis.xclaim(
                        self.stream, self.group, self.name, self.dead_after_ms, message_ids
                    )
                )
        return handled

    async def claim_abandoned(self) -> int:
        """Take over messages another consumer left pending for too long."""
        result = await self.redis.xautoclaim(
            self.stream, self.group, self.name, self.claim_idle_ms, "0-0", count=self.batch_size
        )
        return await self._handle_claimed(result[1])

    async def _handle_claimed(self, messages: list) -> int:  # type: ignore[type-arg]
        for message_id, fields in messages:
            if fields:  # a deleted entry comes back empty; nothing to do but acknowledge
                await self.handle_message(message_id, fields)
            else:
                await self.redis.xack(self.stream, self.group, message_id)
        return len(messages)

    async def _handle_replies(self, replies: list | dict) -> int:  # type: ignore[type-arg]
        entries = replies.items() if isinstance(replies, dict) else replies
        handled = 0
        for _, messages in entries:
            for message_id, fields in messages:
                await self.handle_message(message_id, fields)
                handled += 1
        return handled

    async def handle_message(self, message_id: str, fields: Mapping[str, str]) -> None:
        try:
            envelope = Envelope.model_validate_json(fields["envelope"])
        except (KeyError, ValidationError, ValueError) as exc:
            await self._dead_letter(message_id, fields, f"unreadable envelope: {exc}")
            return
        handler = self.handlers.get(envelope.type)
        if handler is not None:
            with tracing.consuming(envelope, self.group):
                error = await self._handle_with_retries(handler, envelope)
                if error is not None:
                    await self._dead_letter(message_id, fields, error)
                    return
        await self.redis.xack(self.stream, self.group, message_id)

    async def _handle_with_retries(self, handler: Handler, envelope: Envelope) -> str | None:
        """None when handled (or already handled before); else the last error, as text."""
        token = request_id_var.set(envelope.request_id)
        try:
            for attempt in range(1, self.max_attempts + 1):
                try:
                    await self._handle_once(handler, envelope)
                    logger.info(
                        "event handled", extra={"event_id": str(envelope.id), "type": envelope.type}
                    )
                    return None
                except Exception as exc:  # noqa: BLE001 - a handler's bug or bad data
                    if is_transient(exc):
                        raise
                    metrics.HANDLER_FAILURES.labels(self.group, envelope.type).inc()
                    logger.warning(
                        "event handler failed",
                        extra={"event_id": str(envelope.id), "type": envelope.type,
                               "attempt": attempt, "err": repr(exc)},
                    )  # fmt: skip
                    if attempt == self.max_attempts:
                        return repr(exc)
                    await asyncio.sleep(self.retry_delay * 2 ** (attempt - 1))
            return None
        finally:
            request_id_var.reset(token)

    async def _handle_once(self, handler: Handler, envelope: Envelope) -> None:
        async with self.sessionmaker() as session:
            first_time = await session.exec(
                insert(ProcessedEvent)
                .values(event_id=envelope.id, event_type=envelope.type,
                        processed_at=utcnow())
                .on_conflict_do_nothing()
                .returning(col(ProcessedEvent.event_id))
            )  # fmt: skip
            if first_time.first() is None:
                return  # handled before: a redelivery
            await handler(session, envelope)
            await session.commit()

    async def _dead_letter(self, message_id: str, fields: Mapping[str, str], error: str) -> None:
        metrics.EVENTS_DEAD_LETTERED.labels(self.group).inc()
        logger.error(
            "event parked in dead-letter stream", extra={"message_id": message_id, "err": error}
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self.dead_letter_stream,
                {
                    "envelope": fields.get("envelope", json.dumps(dict(fields))),
                    "error": error[:2000],
                    "group": self.group,
                    "message_id": message_id,
                    "failed_at": utcnow().isoformat(),
                },
            )
            pipe.xack(self.stream, self.group, message_id)
            await pipe.execute()
