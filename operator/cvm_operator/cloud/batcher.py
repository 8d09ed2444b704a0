"""Coalescing of concurrent single-key lookups into batched calls (pure asyncio, no I/O)."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

logger = logging.getLogger(__name__)

#: Fetches one batch of keys. A key missing from the result means "does not exist" (None for the
#: caller); a value that is an ``Exception`` fails only that key's callers.
FetchBatch = Callable[[Sequence[K]], Awaitable[Mapping[K, V | Exception]]]


class Batcher(Generic[K, V]):
    """Collects keys and fetches them in batches of at most ``max_batch`` keys. A batch is sent at once
    when it is full, else once no key has joined it for ``window`` seconds, and at the latest ``linger``
    seconds after its first key. Equal keys share one slot. An exception raised by ``fetch`` fails every
    caller of that batch. A key asked while a fetch of it is under way joins that fetch.

    The quiet ``window`` keeps a lone lookup fast; ``linger`` lets a batch keep filling while lookups
    trickle in, as in a poll of thousands of objects where each pass takes CPU before its lookup, so a
    kind with few objects among many gets a lookup every few milliseconds, not a hundred at once.

    Read-ahead (``fresh_for`` > 0): a batch with room is topped up with the keys asked for longest ago
    (at least ``fresh_for`` ago, at most ``recall`` ago), since a key polled regularly is asked again
    soon. Their values are kept for ``fresh_for`` seconds and answer the next ask of that key once, so
    a poll of thousands of objects takes about one call per ``max_batch`` of them. :meth:`invalidate`
    (after every write) drops what was read ahead, including fetches under way, so a read never
    returns what the cloud said before a write.
    """

    def __init__(
        self,
        fetch: FetchBatch[K, V],
        *,
        window: float = 0.02,
        linger: float = 0.5,
        max_batch: int = 100,
        fresh_for: float = 0.0,
        recall: float = 3600.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._fetch = fetch
        self._window = window
        self._linger = max(linger, window)
        self._max_batch = max_batch
        self._pending: dict[K, list[asyncio.Future[V | None]]] = {}
        self._in_flight: dict[K, list[asyncio.Future[V | None]]] = {}
        """Waiters of keys whose fetch is under way and began after the last invalidation."""
        self._first: float = 0.0
        """When the first pending key arrived."""
        self._last: float = 0.0
        """When the newest pending key arrived."""
        self._timer: asyncio.Task[None] | None = None
        self._tasks: dict[asyncio.Task[None], dict[K, list[asyncio.Future[V | None]]]] = {}
        """Fetches under way, with their batches."""
        self._closed = False
        self._fresh_for = fresh_for
        self._recall = recall
        self._asked: OrderedDict[K, float] = OrderedDict()
        """Keys by when they were last asked for, oldest first (read-ahead only)."""
        self._read_ahead: dict[K, tuple[float, V | None]] = {}
        """Values read ahead, with when they were fetched; each answers one ask."""
        self._epoch = 0
        """Counts invalidations; a fetch begun in an older epoch keeps nothing."""
        self.read_ahead_hits = 0

    async def get(self, key: K) -> V | None:
        return (await self.get_many([key]))[key]

    async def get_many(self, keys: Iterable[K]) -> dict[K, V | None]:
        """Values for ``keys`` (None for keys that do not exist), batched with concurrent callers."""
        if self._closed:
            raise RuntimeError("batcher is closed")
        loop = asyncio.get_running_loop()
        now = loop.time()
        futures: dict[K, asyncio.Future[V | None]] = {}
        for key in keys:
            if key in futures:
                continue
            future: asyncio.Future[V | None] = loop.create_future()
            if self._fresh_for > 0:
                self._asked[key] = now
                self._asked.move_to_end(key)
                kept = self._read_ahead.pop(key, None)
                if kept is not None and now - kept[0] <= self._fresh_for:
                    self.read_ahead_hits += 1
                    future.set_result(kept[1])
                    futures[key] = future
                    continue
            futures[key] = future
            joined = self._in_flight.get(key)
            if joined is not None:
                joined.append(future)
                continue
            if not self._pending:
                self._first = loop.time()
            self._pending.setdefault(key, []).append(future)
            if len(self._pending) >= self._max_batch:
                self._start(self._take(self._max_batch))
                self._first = loop.time()
        self._last = loop.time()
        if self._pending and self._timer is None:
            self._timer = asyncio.create_task(self._flush_when_quiet())
        values = await asyncio.gather(*futures.values())
        return dict(zip(futures, values, strict=True))

    def _take(self, count: int) -> dict[K, list[asyncio.Future[V | None]]]:
        taken: dict[K, list[asyncio.Future[V | None]]] = {}
        for key in list(self._pending)[:count]:
            taken[key] = self._pending.pop(key)
        if self._fresh_for > 0:
            self._top_up(taken, count)
        return taken

    def _top_up(self, batch: dict[K, list[asyncio.Future[V | None]]], count: int) -> None:
        """Fill the batch's room with the keys asked for longest ago (no waiters: read ahead)."""
        now = asyncio.get_running_loop().time()
        while self._asked:  # forget keys nobody asked for in a long time (their objects are gone)
            key, asked = next(iter(self._asked.items()))
            if now - asked <= self._recall:
                break
            del self._asked[key]
        for key, asked in self._asked.items():
            if len(batch) >= count or now - asked < self._fresh_for:
                break  # full, or the rest were asked for just now
            kept = self._read_ahead.get(key)
            if kept is not None and now - kept[0] <= self._fresh_for:
                continue  # read ahead already and still fresh
            if key not in batch and key not in self._pending and key not in self._in_flight:
                batch[key] = []
        for key in [key for key, (fetched, _) in self._read_ahead.items() if now - fetched > self._fresh_for]:
            del self._read_ahead[key]

    def invalidate(self) -> None:
        """Forget every value read ahead, and any a fetch under way brings (call after each write)."""
        self._epoch += 1
        self._read_ahead.clear()
        self._in_flight.clear()  # a later ask must not join a fetch begun before the write

    def _start(self, batch: dict[K, list[asyncio.Future[V | None]]]) -> None:
        self._in_flight.update(batch)
        task = asyncio.create_task(self._run(batch))
        self._tasks[task] = batch
        task.add_done_callback(self._tasks.pop)

    async def _flush_when_quiet(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                now = loop.time()
                due = min(self._last + self._window, self._first + self._linger)
                if now >= due or not self._pending:
                    break
                await asyncio.sleep(due - now)
        finally:
            self._timer = None
        while self._pending:
            self._start(self._take(self._max_batch))

    async def _run(self, batch: dict[K, list[asyncio.Future[V | None]]]) -> None:
        epoch = self._epoch
        try:
            results = await self._fetch(list(batch))
        except asyncio.CancelledError:
            for waiters in batch.values():
                for future in waiters:
                    future.cancel()
            raise
        except Exception as exc:  # delivered to the callers, who re-raise it
            logger.debug("batch of %d keys failed: %s", len(batch), exc)
            for waiters in batch.values():
                for future in waiters:
                    if not future.done():
                        future.set_exception(exc)
            return
        finally:
            self._landed(batch)
        fetched = asyncio.get_running_loop().time()
        for key, waiters in batch.items():
            value = results.get(key)
            if not waiters:  # read ahead, and nobody asked while it was under way
                if value is None:
                    self._asked.pop(key, None)  # gone: not read ahead again
                elif epoch == self._epoch and not isinstance(value, Exception):
                    self._read_ahead[key] = (fetched, value)
                continue
            for future in waiters:
                if future.done():  # the caller was cancelled
                    continue
                if isinstance(value, Exception):
                    future.set_exception(value)
                else:
                    future.set_result(value)

    def _landed(self, batch: Mapping[K, list[asyncio.Future[V | None]]]) -> None:
        """The batch's fetch is over: later asks of its keys start a new one."""
        for key, waiters in batch.items():
            if self._in_flight.get(key) is waiters:  # not a newer fetch of the same key
                del self._in_flight[key]

    async def close(self) -> None:
        """Cancel the pending timer and in-flight fetches; their callers get CancelledError."""
        self._closed = True
        tasks = [*self._tasks, *([self._timer] if self._timer else [])]
        for task in tasks:
            task.cancel()
        # A fetch cancelled before it first ran never reaches its own cleanup: cancel its waiters here.
        for waiters in [*self._pending.values(), *(w for batch in self._tasks.values() for w in batch.values())]:
            for future in waiters:
                future.cancel()
        self._pending.clear()
        await asyncio.gather(*tasks, return_exceptions=True)
