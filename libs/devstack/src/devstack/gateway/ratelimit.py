"""Traefik's `rateLimit` middleware: a token bucket per client address.

Mirrors pkg/middlewares/ratelimiter of Traefik v3 with its in-memory limiter:

* each source (the TCP peer address, never a forwarded header) has a golang.org/x/time/rate
  bucket holding up to ``burst`` tokens and refilled at ``average / period`` per second;
* a request that would have to wait at most ``maxDelay`` (half the interval between two
  tokens, at most 0.5 s) is delayed and then served; a longer wait is refused with 429,
  ``Retry-After`` (whole seconds, rounded up) and ``X-Retry-In``, and costs no token;
* buckets idle for ``ttl`` seconds are forgotten (so the next request starts with a full
  bucket), and at most 65536 sources are tracked.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from devstack.gateway.asgi import client_ip, send_text
from devstack.gateway.config import RateLimitConfig
from devstack.gateway.durations import format_go_duration

MAX_SOURCES = 65536


@dataclass
class _Bucket:
    tokens: float
    updated: float  # last request, when ``tokens`` was brought up to date


class TokenBuckets:
    """Token buckets keyed by source, with x/time/rate's arithmetic and Traefik's expiry."""

    def __init__(
        self,
        rate: float,
        burst: int,
        max_delay: float,
        ttl: float,
        *,
        max_sources: int = MAX_SOURCES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_delay = max_delay
        self.ttl = ttl
        self._max_sources = max_sources
        self._clock = clock
        # Least recently used first: every request moves its source to the end.
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def reserve(self, source: str) -> float:
        """Take a token for ``source`` and return how long the request must wait for it.

        A wait longer than ``max_delay`` is a refusal: the token is not taken (Traefik reserves,
        then cancels the reservation).
        """
        now = self._clock()
        bucket = self._bucket(source, now)
        tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate) - 1
        delay = -tokens / self.rate if tokens < 0 else 0.0
        bucket.tokens = tokens if delay <= self.max_delay else tokens + 1
        bucket.updated = now
        return delay

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, source: str, now: float) -> _Bucket:
        self._forget_idle(now)
        bucket = self._buckets.pop(source, None)
        if bucket is None:
            if len(self._buckets) >= self._max_sources:
                self._buckets.popitem(last=False)
            bucket = _Bucket(tokens=self.burst, updated=now)
        self._buckets[source] = bucket
        return bucket

    def _forget_idle(self, now: float) -> None:
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if now - oldest.updated < self.ttl:
                return  # every other bucket was used more recently
            self._buckets.popitem(last=False)


class RateLimit:
    """ASGI middleware answering 429 once a client address exceeds its bucket."""

    def __init__(self, app: ASGIApp, config: RateLimitConfig) -> None:
        self.app = app
        self.buckets: TokenBuckets | None = None
        if config.average > 0:  # Traefik: an average of 0 means an infinite rate
            rate = config.average / config.period
            self.buckets = TokenBuckets(rate, config.burst, _max_delay(rate), _ttl(rate))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.buckets is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        delay = self.buckets.reserve(client_ip(scope))
        if delay > self.buckets.max_delay:
            retry_after = math.ceil(round(delay, 9))
            headers = [
                (b"retry-after", str(retry_after).encode()),
                (b"x-retry-in", format_go_duration(delay).encode()),
            ]
            await send_text(scope, send, 429, "Too Many Requests", headers)
            return
        if delay > 0:
            await asyncio.sleep(delay)
        await self.app(scope, receive, send)


def _max_delay(rate: float) -> float:
    """Go: ``time.Second / (time.Duration(rate) * 2)``, or 500 ms below one token per second."""
    if rate < 1:
        return 0.5
    return (1_000_000_000 // (int(rate) * 2)) / 1_000_000_000


def _ttl(rate: float) -> float:
    """Seconds a bucket may stay idle before it is forgotten (2 s from one token per second)."""
    return 2.0 if rate >= 1 else 1.0 + int(1 / rate)
