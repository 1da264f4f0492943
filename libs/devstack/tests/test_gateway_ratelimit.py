"""Unit tests of the rate limiter's token buckets, driven by a fake clock."""

from __future__ import annotations

import pytest
from starlette.types import Receive, Scope, Send

from devstack.gateway.config import RateLimitConfig
from devstack.gateway.ratelimit import RateLimit, TokenBuckets


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind the limiter; never reached in these tests."""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def buckets(
    clock: Clock, *, rate: float = 10, burst: int = 5, max_sources: int = 100
) -> TokenBuckets:
    return TokenBuckets(rate, burst, max_delay=0.05, ttl=2.0, max_sources=max_sources, clock=clock)


def test_burst_is_served_then_requests_are_refused_with_the_wait() -> None:
    clock = Clock()
    limiter = buckets(clock)
    assert [limiter.reserve("a") for _ in range(5)] == [0.0] * 5
    assert limiter.reserve("a") == pytest.approx(0.1)  # one token every 100 ms
    # A refusal takes no token, so the wait does not grow.
    assert limiter.reserve("a") == pytest.approx(0.1)


def test_tokens_refill_at_the_average_rate() -> None:
    clock = Clock()
    limiter = buckets(clock)
    for _ in range(5):
        limiter.reserve("a")
    clock.now += 0.25  # 2.5 tokens back
    assert [limiter.reserve("a") for _ in range(2)] == [0.0, 0.0]
    # Half a token left: the next one is 50 ms away, within max_delay, so it is taken (the
    # request would be delayed, not refused) ...
    assert limiter.reserve("a") == pytest.approx(0.05)
    # ... and the one after that has to wait 150 ms: refused.
    assert limiter.reserve("a") == pytest.approx(0.15)


def test_sources_are_independent() -> None:
    clock = Clock()
    limiter = buckets(clock, burst=1)
    assert limiter.reserve("10.0.0.1") == 0.0
    assert limiter.reserve("10.0.0.1") > limiter.max_delay
    assert limiter.reserve("10.0.0.2") == 0.0


def test_idle_buckets_are_forgotten_after_the_ttl() -> None:
    clock = Clock()
    limiter = buckets(clock, rate=0.1, burst=1)
    assert limiter.reserve("a") == 0.0
    clock.now += 1.9  # still remembered: the bucket is empty
    assert limiter.reserve("a") > limiter.max_delay
    clock.now += 2.0  # idle past the ttl: Traefik starts again with a full bucket
    assert limiter.reserve("a") == 0.0
    assert len(limiter) == 1


def test_the_number_of_tracked_sources_is_bounded() -> None:
    clock = Clock()
    limiter = buckets(clock, burst=1, max_sources=3)
    for source in ("a", "b", "c", "d"):
        limiter.reserve(source)
    assert len(limiter) == 3
    assert limiter.reserve("a") == 0.0  # "a" was the least recently used, so it was dropped


@pytest.mark.parametrize(
    ("average", "period", "max_delay", "ttl"),
    [(10, 1.0, 0.05, 2.0), (1, 1.0, 0.5, 2.0), (3, 1.0, 0.166666666, 2.0), (1, 4.0, 0.5, 5.0)],
)
def test_limits_follow_traefik(average: int, period: float, max_delay: float, ttl: float) -> None:
    limiter = RateLimit(app, config=RateLimitConfig(average=average, period=period, burst=1))
    assert limiter.buckets is not None
    assert limiter.buckets.rate == pytest.approx(average / period)
    assert limiter.buckets.max_delay == pytest.approx(max_delay)
    assert limiter.buckets.ttl == ttl


def test_an_average_of_zero_disables_limiting() -> None:
    assert RateLimit(app, config=RateLimitConfig(average=0, period=1.0, burst=1)).buckets is None
