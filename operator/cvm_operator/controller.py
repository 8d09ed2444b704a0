"""The controller: watch events in, one work queue, a fixed pool of workers running the reconcilers.

Kopf watches (and logs in, serves probes, peers); each event only updates the cache of bodies and
queues keys. Workers take keys from the queue and run one pass of the kind's reconciler on the
newest body, then queue the key again for the delay the pass asked for. Deleting objects go through
the same queue, so an object is never reconciled and finalized at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from cvm_operator import metrics
from cvm_operator.cloud import backoff
from cvm_operator.kube import Conflict
from cvm_operator.peering import Peering
from cvm_operator.reconcilers.base import CREATE_PENDING, FINALIZER, Driver, ManagedReconciler
from cvm_operator.reconcilers.outcomes import ObjectKey
from cvm_operator.reconcilers.runtime import Runtime, namespace_key, object_key
from cvm_operator.workqueue import QueueShutDown, WorkQueue

logger = logging.getLogger(__name__)

DEFAULT_WORKERS = 512
"""Workers mostly wait (for the cloud, a batch, a token); enough of them lets a poll of thousands of
settled objects fill Describe batches of 100, and a queue of launches waiting for RunInstances tokens
leaves the rest of the objects workers to run on."""


def _trigger(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What, when it changes, makes an object run at once: its spec (generation), its deletion, and the
    annotations users set (e.g. a requested run). Status and the operator's own marks do not."""
    meta = body["metadata"]
    annotations = {key: value for key, value in (meta.get("annotations") or {}).items() if key != CREATE_PENDING}
    return (
        meta.get("uid"),
        meta.get("generation"),
        meta.get("deletionTimestamp") is not None,
        tuple(sorted(annotations.items())),
    )


def _runs_again(previous: Mapping[str, Any] | None, body: Mapping[str, Any]) -> bool:
    """Whether a new body of a known object calls for a pass now. The finalizer counts only when someone
    removes it: the operator's own add arrives by watch too, sometimes before its PATCH response."""
    if previous is None or _trigger(previous) != _trigger(body):
        return True
    had = FINALIZER in (previous["metadata"].get("finalizers") or [])
    return had and FINALIZER not in (body["metadata"].get("finalizers") or [])


class Controller:
    def __init__(
        self,
        runtime: Runtime,
        reconcilers: Mapping[str, ManagedReconciler[Any, Any]],
        workers: int = DEFAULT_WORKERS,
        peering: Peering | None = None,
    ) -> None:
        self.runtime = runtime
        self.reconcilers = {reconciler.kind: reconciler for reconciler in reconcilers.values()}
        self.queue: WorkQueue[ObjectKey] = WorkQueue()
        self.driver = Driver(runtime)
        self.workers = workers
        self.running: set[ObjectKey] = set()
        """Keys a worker is on right now; checked independently of the queue's own rule."""
        self.peering = peering
        if peering is None:
            self.active = asyncio.Event()
            self.active.set()
        else:
            self.active = peering.active
        """Set while this replica may work (always, without peering)."""
        self._tasks: list[asyncio.Task[None]] = []
        metrics.work_queue_depth.set_function(lambda: len(self.queue))

    # ------------------------------------------------------------------ events

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event: remember the body, queue the object if something it acts on changed."""
        key = object_key(body)
        if key.kind not in self.reconcilers:
            return
        if event_type == "DELETED":
            self._forget(key, body)
        elif self.runtime.bodies.stale(body):
            return  # what it says is known already, newer
        elif _runs_again(self.runtime.bodies.remember(body), body):
            self.queue.add(key)
        self._wake_waiters_of(key)

    def namespace_changed(self, name: str) -> None:
        """A namespace's watch event: its labels may now allow (or refuse) the default account."""
        if self.runtime.namespaces is not None:
            self.runtime.namespaces.forget(name)
        self._wake_waiters_of(namespace_key(name))

    def _wake_waiters_of(self, dependency: ObjectKey) -> None:
        for waiter in self.runtime.wakeups.changed(dependency):
            self.queue.add(waiter)

    def _forget(self, key: ObjectKey, body: Mapping[str, Any]) -> None:
        self.runtime.bodies.forget(key)
        self.queue.forget(key)
        self.runtime.wakeups.forget(key)
        uid = str(body["metadata"].get("uid"))
        self.runtime.attempts.pop(uid, None)
        self.runtime.unannounced.forget(uid)

    # ------------------------------------------------------------------ workers

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name=f"worker-{n}") for n in range(self.workers)]
        if self.peering is not None:
            self._tasks.append(asyncio.create_task(self.peering.run(), name="peering"))

    async def stop(self) -> None:
        self.queue.shut_down()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _work(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            if not self.active.is_set():
                # Another replica is active: keep the key for when this one takes over.
                self.queue.done(key)
                self.queue.add(key)
                await self.active.wait()
                continue
            if key in self.running:
                metrics.reconcile_overlaps_total.labels(key.kind).inc()
            self.running.add(key)
            delay: float | None
            try:
                delay = await self._process(key)
            except Exception:
                # A bug or an unreadable answer: logged, and retried with backoff instead of ending the worker.
                logger.exception("%s %s/%s: reconcile failed", key.kind, key.namespace, key.name)
                delay = self._failure_delay(key)
            finally:
                self.running.discard(key)
                self.queue.done(key)
            if delay is not None and self.runtime.bodies.get(key) is not None:
                self.queue.add(key, delay)

    async def _process(self, key: ObjectKey) -> float | None:
        """One pass over the newest body; the delay until the next, or None when there is none."""
        body = self.runtime.bodies.get(key)
        if body is None:
            return None
        reconciler = self.reconcilers[key.kind]
        meta = body["metadata"]
        if meta.get("deletionTimestamp") is None:
            delay = await self.driver.reconcile(reconciler, body)
            return self.runtime.aligned(delay, time.time())
        if FINALIZER not in (meta.get("finalizers") or []):
            return None  # nothing of ours to clean; Kubernetes deletes it
        waiting = await self.driver.finalize(reconciler, body)
        if waiting is not None:
            return self.runtime.config.progress_interval if waiting.delay is None else waiting.delay
        try:
            await self.driver.release(reconciler, body)
        except Conflict:
            return 1.0  # changed since read; the watch event brings the newer body
        return None

    def _failure_delay(self, key: ObjectKey) -> float:
        body = self.runtime.bodies.get(key)
        uid = str(body["metadata"].get("uid")) if body is not None else str(key)
        attempt = self.runtime.attempts.get(uid, 0)
        self.runtime.attempts[uid] = attempt + 1
        return backoff(attempt, base=1.0, cap=self.runtime.config.transient_backoff_cap)
