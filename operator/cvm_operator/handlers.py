"""Kopf wiring: thin handlers that hand every object to its kind's reconciler.

Per object, one daemon loops: reconcile, then sleep for the delay the pass asked for, or less when
the object's spec (or an object it waits for) changes. Deletion runs in an ``on.delete`` handler,
which is what holds the finalizer until the cloud side is cleaned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kopf

from cvm_operator.api import GROUP, VERSION
from cvm_operator.reconcilers import RECONCILERS
from cvm_operator.reconcilers.base import Driver, ManagedReconciler
from cvm_operator.reconcilers.runtime import ObjectKey, Runtime

FINALIZER = f"{GROUP}/finalizer"

registry = kopf.OperatorRegistry()


@kopf.on.startup(registry=registry)
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    # Kopf's own bookkeeping goes to annotations under our group, never into status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    # Long watches with explicit timeouts so idle connections are renewed.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.networking.error_backoffs = [1, 2, 5, 10, 20]


@kopf.on.login(registry=registry)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # Kopf's default login handlers live in its global registry only; this private one needs its own.
    return kopf.login_via_client(**kwargs)


@kopf.on.cleanup(registry=registry)
def stop_loops(memo: kopf.Memo, **_: Any) -> None:
    # Kopf treats daemons still running at exit as hung and waits 5 s before cancelling them.
    _runtime(memo).stopping.set()


def _runtime(memo: kopf.Memo) -> Runtime:
    runtime: Runtime = memo["runtime"]
    return runtime


def _reconciler(memo: kopf.Memo, plural: str) -> ManagedReconciler[Any]:
    reconciler: ManagedReconciler[Any] = memo["reconcilers"][plural]
    return reconciler


async def _loop(plural: str, memo: kopf.Memo, body: kopf.Body, stopped: kopf.DaemonStopped) -> None:
    runtime = _runtime(memo)
    driver = Driver(runtime)
    reconciler = _reconciler(memo, plural)
    uid = body.metadata.uid
    assert uid is not None
    try:
        while not stopped and not runtime.stopping.is_set():
            delay = await driver.reconcile(reconciler, body)
            await _sleep(runtime, uid, runtime.aligned(delay, time.time()), stopped)
    finally:
        runtime.wakeups.forget(uid)
        runtime.attempts.pop(uid, None)


async def _sleep(runtime: Runtime, uid: str, delay: float, stopped: kopf.DaemonStopped) -> None:
    """Sleep until the delay passes, the object is woken, or the operator stops (so shutdown is quick)."""
    waits = {
        asyncio.ensure_future(runtime.wakeups.sleep(uid, delay)),
        asyncio.ensure_future(stopped.wait()),
        asyncio.ensure_future(runtime.stopping.wait()),
    }
    _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()


async def _finalize(plural: str, memo: kopf.Memo, body: kopf.Body) -> None:
    waiting = await Driver(_runtime(memo)).finalize(_reconciler(memo, plural), body)
    if waiting is not None:
        raise kopf.TemporaryError(f"{waiting.reason}: {waiting.message}", delay=_runtime(memo).config.progress_interval)


def _changed(memo: kopf.Memo, body: kopf.Body) -> None:
    runtime = _runtime(memo)
    key = ObjectKey(body["kind"], body.metadata.namespace or "", body.metadata.name or "")
    runtime.wakeups.changed(key, body.metadata.uid or "", int(body.metadata.get("generation") or 0))


def register(plural: str) -> None:
    """Register the daemon, the deletion handler and the change watcher of one kind."""

    @kopf.daemon(GROUP, VERSION, plural, id=f"{plural}-reconcile", cancellation_timeout=5.0, registry=registry)
    async def reconcile(memo: kopf.Memo, body: kopf.Body, stopped: kopf.DaemonStopped, **_: Any) -> None:
        await _loop(plural, memo, body, stopped)

    @kopf.on.delete(GROUP, VERSION, plural, id=f"{plural}-delete", registry=registry)
    async def delete(memo: kopf.Memo, body: kopf.Body, **_: Any) -> None:
        await _finalize(plural, memo, body)

    @kopf.on.event(GROUP, VERSION, plural, id=f"{plural}-watch", registry=registry)
    def watch(memo: kopf.Memo, body: kopf.Body, type: str | None, **_: Any) -> None:
        if type is not None:  # None is the initial listing, which the daemons cover
            _changed(memo, body)


for _plural in RECONCILERS:
    register(_plural)
