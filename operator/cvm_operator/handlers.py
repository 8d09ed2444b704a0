"""Kopf wiring: watch events go to the controller, which queues them for its workers.

Kopf watches, logs in, serves the liveness probe and peers; it holds no per-object task and writes
nothing to the objects (no finalizer, no bookkeeping annotations): the controller's reconcilers hold
their own finalizer, set in the same write as the create-pending mark.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import kopf

from cvm_operator.api import GROUP, VERSION
from cvm_operator.controller import Controller
from cvm_operator.peering import LIFETIME
from cvm_operator.reconcilers import RECONCILERS

KOPF_FINALIZER = f"{GROUP}/kopf-unused"
"""Kopf's own finalizer name: never set, since no handler needs it; distinct from the reconcilers' one,
which Kopf would otherwise remove as not needed by any of its handlers."""

registry = kopf.OperatorRegistry()


@kopf.on.startup(registry=registry)
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = KOPF_FINALIZER
    settings.posting.level = logging.INFO
    # Long watches with explicit timeouts so idle connections are renewed.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.networking.error_backoffs = [1, 2, 5, 10, 20]
    # A replica killed without a goodbye is replaced by a standby once this has passed.
    settings.peering.lifetime = LIFETIME
    selector: str | None = memo.get("selector")
    if selector:
        for plural in RECONCILERS:
            settings.watching.label_selectors[GROUP, plural] = selector
    _controller(memo).start()


@kopf.on.login(registry=registry)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # Kopf's default login handlers live in its global registry only; this private one needs its own.
    return kopf.login_via_client(**kwargs)


@kopf.on.cleanup(registry=registry)
async def stop_workers(memo: kopf.Memo, **_: Any) -> None:
    await _controller(memo).stop()


def _controller(memo: kopf.Memo) -> Controller:
    controller: Controller = memo["controller"]
    return controller


def register(plural: str) -> None:
    @kopf.on.event(GROUP, VERSION, plural, id=f"{plural}-watch", registry=registry)
    async def watch(memo: kopf.Memo, body: kopf.Body, type: str | None, **_: Any) -> None:
        # Async so that it runs on the event loop, like the workers it queues for (a sync handler would
        # run in Kopf's thread pool). A shallow copy: Kopf hands the same live view to later events.
        _controller(memo).observe(type, {key: body[key] for key in body})


for _plural in RECONCILERS:
    register(_plural)


@functools.cache  # one handler per process, however often an operator starts in it
def watch_namespaces() -> None:
    """Follow namespace labels, when they decide which namespaces may use the default account."""

    @kopf.on.event("v1", "namespaces", id="namespaces-watch", registry=registry)
    async def namespace(memo: kopf.Memo, name: str, **_: Any) -> None:
        _controller(memo).namespace_changed(name)
