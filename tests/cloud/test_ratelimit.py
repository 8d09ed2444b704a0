"""Token bucket and per-action rate limits with a hand-driven clock (pure)."""

from __future__ import annotations

import asyncio

import pytest

from cvm_operator.cloud.ratelimit import (
    ACTION_RATE_LIMITS,
    DEFAULT_RATE_LIMIT,
    RateLimiter,
    TokenBucket,
    rate_limit_for,
)


class FakeClock:
    """Time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def test_documented_limits() -> None:
    assert rate_limit_for("DescribeImages") == 40
    assert rate_limit_for("DescribeInstances") == 40
    for action in ("CreateImage", "DeleteImages", "SyncImages", "ImportImage"):
        assert rate_limit_for(action) == 10
    for action in (
        "RunInstances",
        "StartInstances",
        "ResetInstance",
        "ModifyImageSharePermission",
        "ModifyInstancesAttribute",
    ):
        assert rate_limit_for(action) == 10
    assert rate_limit_for("DescribeZones") == DEFAULT_RATE_LIMIT == 20
    with pytest.raises(TypeError):
        ACTION_RATE_LIMITS["CreateImage"] = 100  # type: ignore[index]


def test_try_acquire_spends_the_burst_then_reports_the_wait() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=10, clock=clock, sleep=clock.sleep)
    assert [bucket.try_acquire() for _ in range(10)] == [0.0] * 10
    assert bucket.try_acquire() == pytest.approx(0.1)
    clock.now += 0.05
    assert bucket.try_acquire() == pytest.approx(0.05)
    clock.now += 0.05
    assert bucket.try_acquire() == 0.0


def test_refill_never_exceeds_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=3, clock=clock, sleep=clock.sleep)
    clock.now += 3600
    assert [bucket.try_acquire() for _ in range(4)][:3] == [0.0, 0.0, 0.0]
    assert bucket.try_acquire() > 0


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)


async def test_acquire_paces_to_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    assert bucket.burst == 5  # half a second's worth by default
    start = clock.now
    waits = [await bucket.acquire() for _ in range(25)]
    # 5 from the burst, then one every 0.1 s.
    assert waits[:5] == [0.0] * 5
    assert clock.now - start == pytest.approx(2.0)
    assert all(wait == pytest.approx(0.1) for wait in waits[5:])


async def test_never_more_than_rate_plus_burst_in_any_second() -> None:
    clock = FakeClock()
    bucket = TokenBucket(40, clock=clock, sleep=clock.sleep)
    times: list[float] = []
    for _ in range(400):
        await bucket.acquire()
        times.append(clock.now)
    for index, start in enumerate(times):
        in_window = sum(1 for t in times[index:] if t < start + 1.0)
        assert in_window <= 40 + bucket.burst


async def test_concurrent_waiters_are_served_in_order_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(40, burst=40, clock=clock, sleep=clock.sleep)
    start = clock.now
    order: list[int] = []

    async def take(index: int) -> None:
        await bucket.acquire()
        order.append(index)

    await asyncio.gather(*(take(i) for i in range(100)))
    assert order == list(range(100))
    assert clock.now - start == pytest.approx(60 / 40)


async def test_limiter_keeps_separate_buckets_per_account_region_action() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    for _ in range(5):
        assert await limiter.acquire("acct-1", "ap-guangzhou", "CreateImage") == 0.0
    # Other actions, regions and accounts still have their own full buckets.
    assert await limiter.acquire("acct-1", "ap-guangzhou", "DeleteImages") == 0.0
    assert await limiter.acquire("acct-1", "ap-shanghai", "CreateImage") == 0.0
    assert await limiter.acquire("acct-2", "ap-guangzhou", "CreateImage") == 0.0
    assert clock.sleeps == []
    assert await limiter.acquire("acct-1", "ap-guangzhou", "CreateImage") == pytest.approx(0.1)
    assert limiter.bucket("acct-1", "ap-guangzhou", "DescribeImages").rate == 40


async def test_limiter_uses_a_custom_table() -> None:
    clock = FakeClock()
    limiter = RateLimiter({"DescribeImages": 2}, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        await limiter.acquire("a", "r", "DescribeImages")
    assert clock.now - 1000.0 == pytest.approx(1.0)
    assert limiter.bucket("a", "r", "Other").rate == DEFAULT_RATE_LIMIT
