"""Client-side rate limits per (account, region, action), so the operator paces itself instead of
collecting ``RequestLimitExceeded`` from the cloud."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Final

from cvm_operator import metrics

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: Requests per second per action, from the per-action pages of the CVM API documentation
#: (reference/tencent-cvm-api.md §3.1-3.8 and §5 rule 12: "DescribeImages 40/s; CreateImage,
#: DeleteImages, SyncImages and ImportImage 10/s"). DescribeInstances is documented at 40/s as well.
ACTION_RATE_LIMITS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "DescribeImages": 40.0,
        "DescribeInstances": 40.0,
        "CreateImage": 10.0,
        "DeleteImages": 10.0,
        "SyncImages": 10.0,
        "ImportImage": 10.0,
        # Not stated in the reference; the emulator enforces 10/s for these writes, and pacing below
        # the server is harmless, so the lower value is used rather than the default.
        "ModifyImageAttribute": 10.0,
        "ModifyImageSharePermission": 10.0,
        "RunInstances": 10.0,
        "StartInstances": 10.0,
        "StopInstances": 10.0,
        "RebootInstances": 10.0,
        "TerminateInstances": 10.0,
        "ResetInstance": 10.0,
        "ModifyInstancesAttribute": 10.0,
        # Tag API (a global service, paced per account): 20/s is documented for ModifyResourceTags
        # and the other tag writes.
        "ModifyResourceTags": 20.0,
        "TagResources": 20.0,
        "UnTagResources": 20.0,
        "GetResources": 20.0,
    }
)
#: Conservative default for actions whose limit the reference does not state.
DEFAULT_RATE_LIMIT: Final[float] = 20.0

_EPSILON = 1e-9


def rate_limit_for(action: str, limits: Mapping[str, float] = ACTION_RATE_LIMITS) -> float:
    return limits.get(action, DEFAULT_RATE_LIMIT)


class TokenBucket:
    """A token bucket of ``rate`` tokens per second holding at most ``burst`` tokens (starts full).

    The default burst is half a second's worth: the cloud's own bucket (burst of a full second) then
    keeps a margin that absorbs network jitter, so a client that saturates its limit is still never
    throttled.

    ``clock`` and ``sleep`` are injectable so that tests drive time by hand. Waiters are served in
    arrival order.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, rate / 2 if burst is None else burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()
        self._lock = asyncio.Lock()

    def try_acquire(self) -> float:
        """Take a token if one is available and return 0.0; otherwise return the seconds until one is."""
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated = now
        # The epsilon absorbs float rounding, which could otherwise ask for a sleep shorter than the
        # clock's resolution, forever.
        if self._tokens >= 1.0 - _EPSILON:
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return (1.0 - self._tokens) / self.rate

    async def acquire(self) -> float:
        """Wait for a token; return the seconds waited."""
        waited = 0.0
        async with self._lock:
            while (delay := self.try_acquire()) > 0.0:
                await self._sleep(delay)
                waited += delay
        return waited


class RateLimiter:
    """One :class:`TokenBucket` per (account, region, action), created on first use."""

    def __init__(
        self,
        limits: Mapping[str, float] = ACTION_RATE_LIMITS,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}

    def bucket(self, account: str, region: str, action: str) -> TokenBucket:
        key = (account, region, action)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(rate_limit_for(action, self._limits), clock=self._clock, sleep=self._sleep)
            self._buckets[key] = bucket
        return bucket

    async def acquire(self, account: str, region: str, action: str) -> float:
        """Wait until ``action`` may be called for this account and region; return the seconds waited."""
        return await self.bucket(account, region, action).acquire()

    async def acquire_counted(self, account: str, region: str, action: str) -> float:
        """:meth:`acquire`, adding the wait to ``cvm_operator_cloud_rate_limit_wait_seconds_total``."""
        waited = await self.acquire(account, region, action)
        if waited:
            metrics.cloud_rate_limit_wait_seconds_total.labels(action).inc(waited)
        return waited
