"""Coalescing of concurrent single-key lookups into batched calls (pure asyncio, no I/O)."""

from __future__ import annotations

import asyncio
import logging
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
    caller of that batch.

    The quiet ``window`` keeps a lone lookup fast; ``linger`` lets a batch keep filling while lookups
    trickle in, as in a poll of thousands of objects where each pass takes CPU before its lookup, so a
    kind with few objects among many gets a lookup every few milliseconds, not a hundred at once.
    """

    def __init__(
        self,
        fetch: FetchBatch[K, V],
        *,
        window: float = 0.02,
        linger: float = 1.0,
        max_batch: int = 100,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._fetch = fetch
        self._window = window
        self._linger = max(linger, window)
        self._max_batch = max_batch
        self._pending: dict[K, list[asyncio.Future[V | None]]] = {}
        self._first: float = 0.0
        """When the first pending key arrived."""
        self._last: float = 0.0
        """When the newest pending key arrived."""
        self._timer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def get(self, key: K) -> V | None:
        return (await self.get_many([key]))[key]

    async def get_many(self, keys: Iterable[K]) -> dict[K, V | None]:
        """Values for ``keys`` (None for keys that do not exist), batched with concurrent callers."""
        if self._closed:
            raise RuntimeError("batcher is closed")
        loop = asyncio.get_running_loop()
        futures: dict[K, asyncio.Future[V | None]] = {}
        for key in keys:
            if key in futures:
                continue
            future: asyncio.Future[V | None] = loop.create_future()
            futures[key] = future
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
        return taken

    def _start(self, batch: dict[K, list[asyncio.Future[V | None]]]) -> None:
        task = asyncio.create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        for key, waiters in batch.items():
            value = results.get(key)
            for future in waiters:
                if future.done():  # the caller was cancelled
                    continue
                if isinstance(value, Exception):
                    future.set_exception(value)
                else:
                    future.set_result(value)

    async def close(self) -> None:
        """Cancel the pending timer and in-flight fetches; their callers get CancelledError."""
        self._closed = True
        tasks = [*self._tasks, *([self._timer] if self._timer else [])]
        for task in tasks:
            task.cancel()
        for waiters in self._pending.values():
            for future in waiters:
                future.cancel()
        self._pending.clear()
        await asyncio.gather(*tasks, return_exceptions=True)
