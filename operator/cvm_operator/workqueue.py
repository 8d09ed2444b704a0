"""A work queue in the manner of controller-runtime's: every object key waits here, not in a task of its own.

- A key is queued at most once; adding it again keeps the earlier of the two due times.
- A key handed to a worker is not handed out again until the worker calls :meth:`WorkQueue.done`;
  an add meanwhile is remembered and takes effect then. So one key never runs twice at once.
- One heap holds every requeue (poll grid, backoff, wake-ups), so memory grows by a heap entry per
  object, not by a task.
- Idle workers wait in line: a key that becomes due wakes one of them, and a worker that takes a key
  while more are due wakes the next, so hundreds of idle workers cost nothing per add.

Time comes from an injected clock, so the ordering rules are testable without waiting.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class QueueShutDown(Exception):
    """The queue was shut down; workers stop."""


class WorkQueue(Generic[K]):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        """Queued keys and when each is due; heap entries that disagree with it are stale."""
        self._processing: set[K] = set()
        self._requeue: dict[K, float] = {}
        """Adds that arrived while the key was being processed, applied at done()."""
        self._sequence = itertools.count()
        self._waiters: deque[asyncio.Future[None]] = deque()
        """Idle workers, oldest first."""
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due: float | None = None
        self._shut = False

    def __len__(self) -> int:
        return len(self._due)

    def add(self, key: K, delay: float = 0.0) -> None:
        """Queue ``key`` to run after ``delay`` seconds, or sooner if it is already due sooner."""
        due = self._clock() + max(delay, 0.0)
        if key in self._processing:
            self._requeue[key] = min(due, self._requeue.get(key, due))
            return
        current = self._due.get(key)
        if current is not None and current <= due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._sequence), key))
        if due <= self._clock():
            self._wake_one()
        else:
            self._arm_timer()

    def forget(self, key: K) -> None:
        """Drop a queued key (its object is gone); a run in progress still finishes."""
        self._due.pop(key, None)
        self._requeue.pop(key, None)

    def processing(self, key: K) -> bool:
        return key in self._processing

    def pop_ready(self) -> K | None:
        """The earliest due key whose time has come, now marked as processing; None if none is due."""
        now = self._clock()
        while self._heap:
            due, _, key = self._heap[0]
            if self._due.get(key) != due:
                heapq.heappop(self._heap)  # stale: re-added with another due time, or forgotten
                continue
            if due > now:
                return None
            heapq.heappop(self._heap)
            del self._due[key]
            self._processing.add(key)
            return key
        return None

    def next_due(self) -> float | None:
        """Seconds until the earliest queued key is due (0 if overdue); None when empty."""
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        if not self._heap:
            return None
        return max(self._heap[0][0] - self._clock(), 0.0)

    async def get(self) -> K:
        """Wait for the next due key. Raises QueueShutDown once the queue is shut down."""
        while True:
            if self._shut:
                raise QueueShutDown
            key = self.pop_ready()
            if key is not None:
                if self.next_due() == 0.0:
                    self._wake_one()  # more are due: the next idle worker takes one
                else:
                    self._arm_timer()  # for the next key to come due
                return key
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            self._arm_timer()
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken and cancelled at once: pass the wake-up on
                else:
                    self._waiters.remove(waiter)
                raise

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _arm_timer(self) -> None:
        """One timer, for the earliest due key, wakes one waiter when that key is due (none without waiters:
        a worker arms it when it starts to wait)."""
        wait = self.next_due() if self._waiters else None
        if wait is None:
            return
        due = self._clock() + wait
        if self._timer is not None:
            if self._timer_due is not None and self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer_due = due
        self._timer = asyncio.get_running_loop().call_later(wait, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_due = None
        self._wake_one()

    def done(self, key: K) -> None:
        """The worker finished ``key``; an add that came meanwhile queues it again."""
        self._processing.discard(key)
        due = self._requeue.pop(key, None)
        if due is not None:
            self.add(key, due - self._clock())

    def shut_down(self) -> None:
        self._shut = True
        if self._timer is not None:
            self._timer.cancel()
        while self._waiters:
            self._wake_one()
